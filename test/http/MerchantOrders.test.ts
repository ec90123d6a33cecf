import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { adminToken, request, TestAppLive } from "../support/TestApp.js"

const storeWithKey = (token: string, suffix: string) =>
  Effect.gen(function*() {
    const merchant = yield* request("POST", "/api/admin/merchants", {
      token,
      body: { email: `m-${suffix}@example.test`, password: "merchant-password", name: `Merchant ${suffix}` }
    })
    expect(merchant.status).toBe(201)
    const store = yield* request("POST", "/api/admin/stores", {
      token,
      body: {
        merchantId: merchant.body.id,
        name: `Store ${suffix}`,
        fiatCurrency: "RUB",
        payinCommissionPct: "2.5",
        payoutCommissionPct: "3",
        processingTtlSeconds: 900
      }
    })
    expect(store.status).toBe(201)
    return store.body as { id: number; apiKey: string }
  })

const payin = (merchantOrderId: string, amount = "1500.00") => ({
  merchantOrderId,
  direction: "payin",
  amount,
  currency: "RUB",
  paymentMethod: "card",
  bankCode: "sber",
  customerId: "customer-1",
  clientIp: "203.0.113.7"
})

const countIncoming = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ count: number }>`SELECT count(*)::int AS count FROM incoming_orders`.pipe(Effect.map((rows) => rows[0]!.count)))

layer(TestAppLive(), { excludeTestServices: true })("merchant order intake", (it) => {
  it.effect("creates an order, returns it, and keeps other stores out", () =>
    Effect.gen(function*() {
      const token = yield* adminToken
      const store = yield* storeWithKey(token, "a")
      const other = yield* storeWithKey(token, "b")
      const created = yield* request("POST", "/api/merchant/orders", { apiKey: store.apiKey, body: payin("o-1") })
      expect(created.status).toBe(201)
      expect(created.body).toMatchObject({
        merchantOrderId: "o-1",
        direction: "payin",
        amount: "1500.00",
        currency: "RUB",
        status: "new",
        failureReason: null,
        order: null
      })
      const fetched = yield* request("GET", `/api/merchant/orders/${created.body.id}`, { apiKey: store.apiKey })
      expect(fetched.status).toBe(200)
      expect(fetched.body.id).toBe(created.body.id)
      const foreign = yield* request("GET", `/api/merchant/orders/${created.body.id}`, { apiKey: other.apiKey })
      expect(foreign.status).toBe(404)
      const noKey = yield* request("GET", `/api/merchant/orders/${created.body.id}`)
      expect(noKey.status).toBe(401)
      const badKey = yield* request("GET", `/api/merchant/orders/${created.body.id}`, { apiKey: store.apiKey + "x" })
      expect(badKey.status).toBe(401)
    }))

  it.effect("same merchantOrderId: same body → 200 the first order, different body → 409", () =>
    Effect.gen(function*() {
      const token = yield* adminToken
      const store = yield* storeWithKey(token, "c")
      const first = yield* request("POST", "/api/merchant/orders", { apiKey: store.apiKey, body: payin("dup-1") })
      expect(first.status).toBe(201)
      const again = yield* request("POST", "/api/merchant/orders", { apiKey: store.apiKey, body: payin("dup-1") })
      expect(again.status).toBe(200)
      expect(again.body.id).toBe(first.body.id)
      const different = yield* request("POST", "/api/merchant/orders", { apiKey: store.apiKey, body: payin("dup-1", "1600.00") })
      expect(different.status).toBe(409)
      expect(different.body._tag).toBe("DuplicateOrder")
    }))

  it.effect("Idempotency-Key: replays the stored response, refuses another body, concurrent duplicates create one order", () =>
    Effect.gen(function*() {
      const token = yield* adminToken
      const store = yield* storeWithKey(token, "d")
      const headers = { "idempotency-key": "key-1" }
      const first = yield* request("POST", "/api/merchant/orders", { apiKey: store.apiKey, body: payin("idem-1"), headers })
      expect(first.status).toBe(201)
      const replay = yield* request("POST", "/api/merchant/orders", { apiKey: store.apiKey, body: payin("idem-1"), headers })
      expect(replay.status).toBe(201)
      expect(replay.headers.get("idempotent-replayed")).toBe("true")
      expect(replay.body.id).toBe(first.body.id)
      const reused = yield* request("POST", "/api/merchant/orders", { apiKey: store.apiKey, body: payin("idem-2"), headers })
      expect(reused.status).toBe(409)

      const before = yield* countIncoming
      const racing = yield* Effect.all(
        Array.from({ length: 10 }, () =>
          request("POST", "/api/merchant/orders", {
            apiKey: store.apiKey,
            body: payin("idem-race"),
            headers: { "idempotency-key": "race-key" }
          })),
        { concurrency: "unbounded" }
      )
      expect(racing.every((response) => response.status === 201 || response.status === 200 || response.status === 409)).toBe(true)
      const ids = new Set(racing.filter((response) => response.status < 300).map((response) => response.body.id))
      expect(ids.size).toBe(1)
      expect((yield* countIncoming) - before).toBe(1)
    }))

  it.effect("bad input is a 400 naming the field, and nothing is written", () =>
    Effect.gen(function*() {
      const token = yield* adminToken
      const store = yield* storeWithKey(token, "e")
      const before = yield* countIncoming
      const cases: ReadonlyArray<readonly [string, unknown]> = [
        ["amount", { ...payin("bad-1"), amount: "-5.00" }],
        ["amount", { ...payin("bad-2"), amount: "0" }],
        ["amount", { ...payin("bad-3"), amount: "1.234" }],
        ["amount", { ...payin("bad-4"), amount: "1e5" }],
        ["amount", { ...payin("bad-5"), amount: 1500 }],
        ["amount", { ...payin("bad-6"), amount: "99999999999.00" }],
        ["direction", { ...payin("bad-7"), direction: "sideways" }],
        ["currency", { ...payin("bad-8"), currency: "USD" }],
        ["currency", { ...payin("bad-9"), currency: "rub" }],
        ["paymentMethod", { ...payin("bad-10"), paymentMethod: "cash" }],
        ["bankCode", { ...payin("bad-11"), bankCode: "nobank" }],
        ["payoutDestination", { ...payin("bad-12"), direction: "payout" }],
        ["payoutDestination", { ...payin("bad-13"), payoutDestination: { details: "2200000000000001", holderName: "X", bankCode: "sber" } }],
        ["callbackUrl", { ...payin("bad-14"), callbackUrl: "not a url" }],
        ["callbackUrl", { ...payin("bad-15"), callbackUrl: "http://127.0.0.1/hook" }],
        ["callbackUrl", { ...payin("bad-16"), callbackUrl: "ftp://example.com/x" }],
        ["returnUrl", { ...payin("bad-17"), returnUrl: "javascript:alert(1)" }],
        ["merchantOrderId", { ...payin(""), merchantOrderId: "" }],
        ["merchantOrderId", { ...payin("x".repeat(200)) }],
        ["clientIp", { ...payin("bad-20"), clientIp: "not-an-ip" }]
      ]
      for (const [field, body] of cases) {
        const response = yield* request("POST", "/api/merchant/orders", { apiKey: store.apiKey, body })
        expect(response.status, `${field}: ${JSON.stringify(body)} → ${response.text}`).toBe(400)
        expect(response.body._tag).toBeDefined()
        expect(response.text).toContain(field)
      }
      const malformed = yield* request("POST", "/api/merchant/orders", {
        apiKey: store.apiKey,
        rawBody: "{not json",
        headers: { "content-type": "application/json" }
      })
      expect(malformed.status).toBe(400)
      const badId = yield* request("GET", "/api/merchant/orders/abc", { apiKey: store.apiKey })
      expect(badId.status).toBe(400)
      expect(yield* countIncoming).toBe(before)
    }))

  it.effect("balances: admin deposits and withdrawals, merchant and trader views", () =>
    Effect.gen(function*() {
      const token = yield* adminToken
      const store = yield* storeWithKey(token, "f")
      const deposit = yield* request("POST", `/api/admin/stores/${store.id}/deposit`, { token, body: { amount: "100.5" } })
      expect(deposit.status).toBe(200)
      expect(deposit.body).toEqual({ balance: "100.500000", frozen: "0.000000", available: "100.500000" })
      const tooMuch = yield* request("POST", `/api/admin/stores/${store.id}/withdrawal`, { token, body: { amount: "200" } })
      expect(tooMuch.status).toBe(409)
      expect(tooMuch.body._tag).toBe("InsufficientBalance")
      const withdrawal = yield* request("POST", `/api/admin/stores/${store.id}/withdrawal`, { token, body: { amount: "0.5" } })
      expect(withdrawal.body.balance).toBe("100.000000")
      const view = yield* request("GET", "/api/merchant/balance", { apiKey: store.apiKey })
      expect(view.body).toEqual({ balance: "100.000000", frozen: "0.000000", available: "100.000000" })
      const negative = yield* request("POST", `/api/admin/stores/${store.id}/deposit`, { token, body: { amount: "-1" } })
      expect(negative.status).toBe(400)
      const unknown = yield* request("POST", `/api/admin/stores/999999/deposit`, { token, body: { amount: "1" } })
      expect(unknown.status).toBe(404)
      const trader = yield* request("POST", "/api/admin/traders", {
        token,
        body: { email: "t-f@example.test", password: "trader-password", payinRewardPct: "2", payoutRewardPct: "2" }
      })
      yield* request("POST", `/api/admin/traders/${trader.body.id}/deposit`, { token, body: { amount: "500" } })
      const login = yield* request("POST", "/api/auth/login", { body: { email: "t-f@example.test", password: "trader-password" } })
      const traderView = yield* request("GET", "/api/trader/balance", { token: login.body.token })
      expect(traderView.body).toEqual({ balance: "500.000000", frozen: "0.000000", available: "500.000000" })
      const forbidden = yield* request("POST", `/api/admin/traders/${trader.body.id}/deposit`, { token: login.body.token, body: { amount: "1" } })
      expect(forbidden.status).toBe(403)
    }))
})
