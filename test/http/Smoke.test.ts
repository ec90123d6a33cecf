import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { adminToken, request, TestAppLive } from "../support/TestApp.js"

layer(TestAppLive(), { excludeTestServices: true })("smoke", (it) => {
  it.effect("health, ready, metrics, docs and admin login", () =>
    Effect.gen(function*() {
      expect((yield* request("GET", "/health")).body).toEqual({ status: "ok" })
      expect((yield* request("GET", "/ready")).status).toBe(200)
      const metrics = yield* request("GET", "/metrics")
      expect(metrics.text).toContain("jivapay_")
      expect((yield* request("GET", "/docs")).status).toBe(200)
      const token = yield* adminToken
      expect(token.length).toBeGreaterThan(20)
    }))
})
