import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { BigDecimal, Effect } from "effect"
import { FraudDetector } from "../../src/services/FraudDetector.js"
import { adminToken, request, TestAppLive } from "../support/TestApp.js"

/** Nothing listens on port 1: every Redis call fails at once, as in an outage. */
const UNREACHABLE_REDIS = "redis://127.0.0.1:1"

layer(TestAppLive({ redisUrl: UNREACHABLE_REDIS }), { excludeTestServices: true })("Redis down", (it) => {
  it.effect("intake still takes orders, fraud still decides from SQL, readiness says which dependency is down", () =>
    Effect.gen(function*() {
      const token = yield* adminToken
      const merchant = yield* request("POST", "/api/admin/merchants", {
        token,
        body: { email: "m-redis@example.test", password: "merchant-password", name: "Redis Down" }
      })
      const store = yield* request("POST", "/api/admin/stores", {
        token,
        body: {
          merchantId: merchant.body.id,
          name: "Store",
          fiatCurrency: "RUB",
          payinCommissionPct: "2",
          payoutCommissionPct: "2",
          processingTtlSeconds: 900
        }
      })
      expect(store.status).toBe(201)
      const created = yield* request("POST", "/api/merchant/orders", {
        apiKey: store.body.apiKey,
        body: {
          merchantOrderId: "redis-down-1",
          direction: "payin",
          amount: "1000.00",
          currency: "RUB",
          paymentMethod: "card",
          clientIp: "198.51.100.4"
        }
      })
      expect(created.status).toBe(201)
      const ready = yield* request("GET", "/ready")
      expect(ready.status).toBe(503)
      expect(ready.text).toContain("redis")
      expect((yield* request("GET", "/health")).status).toBe(200)

      // The fraud detector falls back to SQL aggregates: its decision is made and stored.
      const decision = yield* Effect.flatMap(FraudDetector, (fraud) =>
        fraud.checkIncomingOrder({
          incomingOrderId: created.body.id,
          storeId: store.body.id,
          amountFiat: BigDecimal.unsafeFromString("1000"),
          customerId: null,
          clientIp: "198.51.100.4"
        })).pipe(Effect.provide(FraudDetector.Default))
      expect(decision.decision).toBe("ALLOW")
      const sql = yield* SqlClient.SqlClient
      const checks = yield* sql`SELECT details FROM fraud_checks WHERE incoming_order_id = ${created.body.id}`
      expect(checks.length).toBe(1)
    }))
})
