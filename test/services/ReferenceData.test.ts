import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { BigDecimal, Duration, Effect, Layer, Option } from "effect"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { AppConfig } from "../../src/layers/Config.js"
import { KeyValue } from "../../src/layers/KeyValue.js"
import { AuditLogger } from "../../src/services/AuditLogger.js"
import { ErrorReporter, ReportedErrors } from "../../src/services/ErrorReporter.js"
import { ReferenceData } from "../../src/services/ReferenceData.js"
import { refreshRatesOnce } from "../../src/workers/RateRefresher.js"
import { createStore } from "../support/fixtures.js"
import { testRedisUrl } from "../support/env.js"
import { TestDatabaseLive } from "../support/TestDatabase.js"

interface FakeProvider {
  server: Server
  url: string
  lastPath: string
  respond: { status: number; body: string }
}

/** A local stand-in for a public rate API: answers what the test tells it to. */
const fakeProvider = Effect.acquireRelease(
  Effect.async<FakeProvider>((resume) => {
    const state: FakeProvider = { server: undefined as unknown as Server, url: "", lastPath: "", respond: { status: 200, body: "{\"price\":\"91.25\"}" } }
    state.server = createServer((request, response) => {
      state.lastPath = request.url ?? ""
      response.writeHead(state.respond.status, { "content-type": "application/json" })
      response.end(state.respond.body)
    })
    state.server.listen(0, "127.0.0.1", () => {
      state.url = `http://127.0.0.1:${(state.server.address() as AddressInfo).port}/price?symbol={crypto}{fiat}`
      resume(Effect.succeed(state))
    })
  }),
  ({ server }) => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
)

const settings = { rateMaxAge: Duration.minutes(30) }

const TestLayer = Layer.mergeAll(ReferenceData.DefaultWithoutDependencies, ErrorReporter.Test).pipe(
  Layer.provide(AuditLogger.Default),
  Layer.provideMerge(KeyValue.layerRedis(testRedisUrl, { keyPrefix: `jivapay-refdata-${Date.now()}:` })),
  Layer.provideMerge(AppConfig.layerWith(settings)),
  Layer.provideMerge(TestDatabaseLive())
)

layer(TestLayer, { excludeTestServices: true })("reference data", (it) => {
  it.scoped("pulls rates from an HTTP provider, keeps the last value when it fails, refuses a stale rate", () =>
    Effect.gen(function*() {
      const provider = yield* fakeProvider
      const referenceData = yield* ReferenceData
      const sql = yield* SqlClient.SqlClient
      yield* createStore({ fiatCurrency: "RUB" })

      const fresh = yield* referenceData.refreshFromProvider(provider.url, "RUB", "USDT")
      expect(BigDecimal.format(fresh.rate)).toBe("91.25")
      expect(provider.lastPath).toContain("symbol=USDTRUB")
      expect(BigDecimal.format((yield* referenceData.currentRate("RUB", "USDT")).rate)).toBe("91.25")

      provider.respond = { status: 500, body: "oops" }
      const failed = yield* referenceData.refreshFromProvider(provider.url, "RUB", "USDT").pipe(Effect.flip)
      expect(failed._tag).toBe("RateUnavailable")
      provider.respond = { status: 200, body: "{\"price\":\"-3\"}" }
      expect((yield* referenceData.refreshFromProvider(provider.url, "RUB", "USDT").pipe(Effect.flip))._tag).toBe("RateUnavailable")
      provider.respond = { status: 200, body: "{\"unexpected\":true}" }
      expect((yield* referenceData.refreshFromProvider(provider.url, "RUB", "USDT").pipe(Effect.flip))._tag).toBe("RateUnavailable")
      // The last good value is still used while it is young.
      expect(BigDecimal.format((yield* referenceData.currentRate("RUB", "USDT")).rate)).toBe("91.25")

      // Age every stored rate beyond RATE_MAX_AGE; the cache must not hide the staleness.
      yield* sql`UPDATE exchange_rates SET fetched_at = now() - interval '2 hours'`
      const keyValue = yield* KeyValue
      yield* keyValue.delete("rate:RUB:USDT")
      const stale = yield* referenceData.currentRate("RUB", "USDT").pipe(Effect.flip)
      expect(stale._tag).toBe("RateUnavailable")
      expect(stale.message).toContain("older than RATE_MAX_AGE")

      const missing = yield* referenceData.currentRate("RUB", "BTC").pipe(Effect.flip)
      expect(missing._tag).toBe("RateUnavailable")
    }))

  it.scoped("the refresher records provider rates for active pairs and reports a stale pair", () =>
    Effect.gen(function*() {
      const provider = yield* fakeProvider
      provider.respond = { status: 503, body: "down" }
      const config = yield* AppConfig
      const round = refreshRatesOnce.pipe(
        Effect.provideService(AppConfig, { ...config, rateProviderUrl: Option.some(provider.url) })
      )
      yield* round
      const reports = yield* ReportedErrors
      expect((yield* reports.all).length).toBeGreaterThan(0)
      provider.respond = { status: 200, body: "{\"rate\":93.5}" }
      yield* round
      const referenceData = yield* ReferenceData
      expect(BigDecimal.format((yield* referenceData.currentRate("RUB", "USDT")).rate)).toBe("93.5")
    }))

  it.effect("reference lookups are cached and unknown codes are NotFound", () =>
    Effect.gen(function*() {
      const referenceData = yield* ReferenceData
      expect(yield* referenceData.requireReference("banks", "sber")).toBe("sber")
      const unknown = yield* referenceData.requireReference("banks", "nope").pipe(Effect.flip)
      expect(unknown._tag).toBe("NotFound")
    }))
})
