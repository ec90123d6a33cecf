import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { adminToken, loginAs, request, TestAppLive } from "../support/TestApp.js"

const uniqueEmail = (prefix: string) => `${prefix}-${randomBytes(5).toString("hex")}@admin.test`
const PASSWORD = "a-long-password-1"

const storeBody = (merchantId: unknown, overrides: Record<string, unknown> = {}) => ({
  merchantId,
  name: "Corner Shop",
  fiatCurrency: "RUB",
  payinCommissionPct: "2.5",
  payoutCommissionPct: "3.125",
  processingTtlSeconds: 900,
  ...overrides
})

const traderBody = (email: string) => ({ email, password: PASSWORD, payinRewardPct: "2", payoutRewardPct: "2.5" })

/** Row counts of every table the admin endpoints write. */
const counts = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<Record<string, number>>`
    SELECT (SELECT count(*) FROM users)::int AS users,
           (SELECT count(*) FROM merchants)::int AS merchants,
           (SELECT count(*) FROM merchant_stores)::int AS stores,
           (SELECT count(*) FROM balance_stores)::int AS store_balances,
           (SELECT count(*) FROM traders)::int AS traders,
           (SELECT count(*) FROM balance_traders)::int AS trader_balances,
           (SELECT count(*) FROM exchange_rates)::int AS rates,
           (SELECT count(*) FROM audit_logs WHERE action LIKE 'admin.%')::int AS admin_audits`
  return row!
})

const createMerchant = Effect.gen(function*() {
  const email = uniqueEmail("merchant")
  const response = yield* request("POST", "/api/admin/merchants", {
    token: yield* adminToken,
    body: { email, password: PASSWORD, name: "Corner Shop Ltd" }
  })
  expect(response.status).toBe(201)
  return { email, id: response.body.id as number, userId: response.body.userId as number }
})

layer(TestAppLive(), { excludeTestServices: true })("admin", (it) => {
  it.effect("create merchant: 201 {id, userId}, a merchant user with a hashed password, audited", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const email = uniqueEmail("merchant")
      const response = yield* request("POST", "/api/admin/merchants", {
        token: yield* adminToken,
        body: { email, password: PASSWORD, name: "Corner Shop Ltd" }
      })
      expect(response.status).toBe(201)
      expect(Object.keys(response.body).sort()).toEqual(["id", "userId"])
      const [user] = yield* sql<{ role: string; passwordHash: string; name: string; merchantId: number }>`
        SELECT u.role, u.password_hash, m.name, m.id AS merchant_id
        FROM users u JOIN merchants m ON m.user_id = u.id WHERE u.id = ${response.body.userId}`
      expect(user).toMatchObject({ role: "merchant", name: "Corner Shop Ltd", merchantId: response.body.id })
      expect(user!.passwordHash).not.toContain(PASSWORD)
      const audits = yield* sql`SELECT 1 FROM audit_logs WHERE action = 'admin.merchant_created' AND target_id = ${String(response.body.id)}`
      expect(audits).toHaveLength(1)
      // The new merchant can log in with the password the admin set.
      const login = yield* request("POST", "/api/auth/login", { body: { email, password: PASSWORD } })
      expect(login.body).toMatchObject({ role: "merchant", userId: response.body.userId })
    }))

  it.effect("a duplicate email (any case, any role) is 409 Conflict and writes nothing", () =>
    Effect.gen(function*() {
      const token = yield* adminToken
      const merchant = yield* createMerchant
      const before = yield* counts
      for (const email of [merchant.email, merchant.email.toUpperCase()]) {
        const again = yield* request("POST", "/api/admin/merchants", { token, body: { email, password: PASSWORD, name: "Other" } })
        expect(again.status).toBe(409)
        expect(again.body._tag).toBe("Conflict")
        expect(typeof again.body.message).toBe("string")
        const asTrader = yield* request("POST", "/api/admin/traders", { token, body: traderBody(email) })
        expect(asTrader.status).toBe(409)
        expect(asTrader.body._tag).toBe("Conflict")
      }
      expect(yield* counts).toEqual(before)
    }))

  it.effect("create store: 201 with the keys shown once; only the API key's hash is stored", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const merchant = yield* createMerchant
      const response = yield* request("POST", "/api/admin/stores", {
        token: yield* adminToken,
        body: storeBody(merchant.id, { callbackUrl: "https://shop.example.com/jivapay" })
      })
      expect(response.status).toBe(201)
      expect(Object.keys(response.body).sort()).toEqual(["apiKey", "id", "publicId", "secretKey"])
      const { apiKey, id, publicId, secretKey } = response.body as { apiKey: string; id: number; publicId: string; secretKey: string }
      expect(apiKey).toMatch(/^jpk_[A-Za-z0-9_-]{12}\.[A-Za-z0-9_-]{43}$/)
      expect(secretKey.length).toBeGreaterThanOrEqual(32)

      const [store] = yield* sql<{ row: string; apiKeyHash: Uint8Array; merchantId: number; publicId: string }>`
        SELECT row_to_json(s)::text AS row, s.api_key_hash, s.merchant_id, s.public_id FROM merchant_stores s WHERE s.id = ${id}`
      expect(store).toMatchObject({ merchantId: merchant.id, publicId })
      const keySecret = apiKey.split(".")[1]!
      expect(store!.row).not.toContain(apiKey)
      expect(store!.row).not.toContain(keySecret)
      expect(store!.apiKeyHash).toHaveLength(32)
      expect(Buffer.from(store!.apiKeyHash).toString("utf8")).not.toContain(keySecret)
      // Nothing anywhere in the audit trail holds the key either.
      const leaks = yield* sql`SELECT 1 FROM audit_logs WHERE details::text LIKE ${`%${keySecret}%`}`
      expect(leaks).toHaveLength(0)

      const [settings] = yield* sql<Record<string, unknown>>`
        SELECT fiat_currency, payin_commission_pct, payout_commission_pct, processing_ttl_seconds, callback_url,
               gateway_require_customer_id_param, gateway_require_amount_param
        FROM merchant_stores WHERE id = ${id}`
      expect(settings).toEqual({
        fiatCurrency: "RUB",
        payinCommissionPct: "2.5000",
        payoutCommissionPct: "3.1250",
        processingTtlSeconds: 900,
        callbackUrl: "https://shop.example.com/jivapay",
        gatewayRequireCustomerIdParam: false,
        gatewayRequireAmountParam: true
      })
      const balances = yield* sql<{ balance: string; frozen: string }>`SELECT balance, frozen FROM balance_stores WHERE store_id = ${id}`
      expect(balances).toHaveLength(1)
      expect(Number(balances[0]!.balance)).toBe(0)
      expect(Number(balances[0]!.frozen)).toBe(0)
    }))

  it.effect("create store for an unknown merchant is 404 and for an unknown currency 400; nothing written", () =>
    Effect.gen(function*() {
      const token = yield* adminToken
      const merchant = yield* createMerchant
      const before = yield* counts
      const unknown = yield* request("POST", "/api/admin/stores", { token, body: storeBody(987_654) })
      expect(unknown.status).toBe(404)
      expect(unknown.body._tag).toBe("NotFound")
      const currency = yield* request("POST", "/api/admin/stores", { token, body: storeBody(merchant.id, { fiatCurrency: "EUR" }) })
      expect(currency.status).toBe(400)
      expect(currency.body).toMatchObject({ _tag: "ValidationError", field: "fiatCurrency" })
      expect(currency.body.message).toContain("fiatCurrency")
      expect(yield* counts).toEqual(before)
    }))

  it.effect("create trader: 201 {id, userId}, rewards stored at NUMERIC(7,4), a zero balance, can log in", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const email = uniqueEmail("trader")
      const response = yield* request("POST", "/api/admin/traders", {
        token: yield* adminToken,
        body: { ...traderBody(email), priority: 7 }
      })
      expect(response.status).toBe(201)
      expect(Object.keys(response.body).sort()).toEqual(["id", "userId"])
      const [trader] = yield* sql<Record<string, unknown>>`
        SELECT u.role, t.payin_reward_pct, t.payout_reward_pct, t.priority, t.in_work, t.is_active, b.balance, b.frozen
        FROM traders t JOIN users u ON u.id = t.user_id JOIN balance_traders b ON b.trader_id = t.id
        WHERE t.id = ${response.body.id} AND u.id = ${response.body.userId}`
      expect(trader).toMatchObject({
        role: "trader",
        payinRewardPct: "2.0000",
        payoutRewardPct: "2.5000",
        priority: 7,
        inWork: false,
        isActive: true
      })
      expect(Number(trader!.balance)).toBe(0)
      const login = yield* request("POST", "/api/auth/login", { body: { email, password: PASSWORD } })
      expect(login.body.role).toBe("trader")
    }))

  it.effect("PUT exchange rate: 200 with the stored rate; every rate is kept as history", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const token = yield* adminToken
      const first = yield* request("PUT", "/api/admin/exchange-rates", { token, body: { fiat: "RUB", crypto: "USDT", rate: "92.5" } })
      expect(first.status).toBe(200)
      expect(first.body).toMatchObject({ fiat: "RUB", crypto: "USDT", rate: "92.50000000", source: "admin" })
      expect(Number.isNaN(Date.parse(first.body.fetchedAt))).toBe(false)
      const second = yield* request("PUT", "/api/admin/exchange-rates", {
        token,
        body: { fiat: "RUB", crypto: "USDT", rate: "93.12345678" }
      })
      expect(second.status).toBe(200)
      const rows = yield* sql<{ rate: string; source: string }>`
        SELECT rate, source FROM exchange_rates WHERE fiat_code = 'RUB' AND crypto_code = 'USDT' ORDER BY id DESC LIMIT 2`
      expect(rows).toEqual([{ rate: "93.12345678", source: "admin" }, { rate: "92.50000000", source: "admin" }])
      const audits = yield* sql`SELECT 1 FROM audit_logs WHERE action = 'admin.exchange_rate_set'`
      expect(audits.length).toBeGreaterThanOrEqual(2)
    }))

  it.effect("an unknown currency pair is 400 naming the field and writes nothing", () =>
    Effect.gen(function*() {
      const token = yield* adminToken
      const before = yield* counts
      const fiat = yield* request("PUT", "/api/admin/exchange-rates", { token, body: { fiat: "EUR", crypto: "USDT", rate: "1.5" } })
      expect(fiat.status).toBe(400)
      expect(fiat.body).toMatchObject({ _tag: "ValidationError", field: "fiat" })
      const crypto = yield* request("PUT", "/api/admin/exchange-rates", { token, body: { fiat: "RUB", crypto: "BTC", rate: "1.5" } })
      expect(crypto.status).toBe(400)
      expect(crypto.body).toMatchObject({ _tag: "ValidationError", field: "crypto" })
      expect(yield* counts).toEqual(before)
    }))

  it.effect("trader and merchant tokens are 403 Forbidden on every admin route, no token 401; nothing written", () =>
    Effect.gen(function*() {
      const token = yield* adminToken
      const merchant = yield* createMerchant
      const traderEmail = uniqueEmail("trader")
      expect((yield* request("POST", "/api/admin/traders", { token, body: traderBody(traderEmail) })).status).toBe(201)
      const traderToken = yield* loginAs(traderEmail, PASSWORD)
      const merchantToken = yield* loginAs(merchant.email, PASSWORD)

      const routes: ReadonlyArray<readonly [string, string, unknown]> = [
        ["POST", "/api/admin/merchants", { email: uniqueEmail("m"), password: PASSWORD, name: "Sneaky" }],
        ["POST", "/api/admin/stores", storeBody(merchant.id)],
        ["POST", "/api/admin/traders", traderBody(uniqueEmail("t"))],
        ["PUT", "/api/admin/exchange-rates", { fiat: "RUB", crypto: "USDT", rate: "1.00" }]
      ]
      const before = yield* counts
      for (const [method, path, body] of routes) {
        for (const [who, callerToken] of [["trader", traderToken], ["merchant", merchantToken]] as const) {
          const response = yield* request(method, path, { token: callerToken, body })
          expect(response.status, `${who} ${method} ${path}`).toBe(403)
          expect(response.body._tag, `${who} ${method} ${path}`).toBe("Forbidden")
          expect(typeof response.body.message).toBe("string")
        }
        const anonymous = yield* request(method, path, { body })
        expect(anonymous.status, `anonymous ${method} ${path}`).toBe(401)
        expect(anonymous.body._tag).toBe("Unauthorized")
      }
      expect(yield* counts).toEqual(before)
    }))

  it.effect("fields the request does not define are ignored, never written (no mass assignment)", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const token = yield* adminToken
      const email = uniqueEmail("merchant")
      const response = yield* request("POST", "/api/admin/merchants", {
        token,
        body: { email, password: PASSWORD, name: "Plain", role: "admin", isActive: false, id: 1 }
      })
      expect(response.status).toBe(201)
      const [user] = yield* sql<{ role: string; isActive: boolean }>`SELECT role, is_active FROM users WHERE id = ${response.body.userId}`
      expect(user).toEqual({ role: "merchant", isActive: true })
    }))
})
