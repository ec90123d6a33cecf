import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { adminToken, loginAs, request, TEST_ADMIN_EMAIL, TEST_ADMIN_PASSWORD, TestAppLive } from "../support/TestApp.js"

const uniqueEmail = (prefix: string) => `${prefix}-${randomBytes(5).toString("hex")}@auth.test`
const TRADER_PASSWORD = "trader-password-123"

/** A trader created through the admin API, so that login and the trader routes are exercised for real. */
const createTrader = Effect.gen(function*() {
  const email = uniqueEmail("trader")
  const created = yield* request("POST", "/api/admin/traders", {
    token: yield* adminToken,
    body: { email, password: TRADER_PASSWORD, payinRewardPct: "2", payoutRewardPct: "2.5" }
  })
  expect(created.status).toBe(201)
  return { email, userId: created.body.userId as number, traderId: created.body.id as number }
})

const auditRows = (action: string, userId?: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ action: string; userId: number | null; userRole: string | null; targetEntity: string | null; ipAddress: string | null; details: unknown }>`
      SELECT action, user_id, user_role, target_entity, ip_address, details FROM audit_logs
      WHERE action = ${action} ${userId === undefined ? sql`` : sql`AND user_id = ${userId}`}
      ORDER BY id`)

const INVALID_CREDENTIALS = { _tag: "Unauthorized", message: "invalid email or password" }
const INVALID_TOKEN = { _tag: "Unauthorized", message: "missing, invalid or expired bearer token" }

layer(TestAppLive(), { excludeTestServices: true })("auth", (it) => {
  it.effect("login returns a bearer token, the role, the user id and the expiry", () =>
    Effect.gen(function*() {
      const response = yield* request("POST", "/api/auth/login", {
        body: { email: TEST_ADMIN_EMAIL, password: TEST_ADMIN_PASSWORD }
      })
      expect(response.status).toBe(200)
      expect(Object.keys(response.body).sort()).toEqual(["expiresAt", "role", "token", "userId"])
      expect(response.body.role).toBe("admin")
      expect(typeof response.body.userId).toBe("number")
      expect(response.body.token).toMatch(/^[A-Za-z0-9_-]{32,}$/)
      const expiresInMs = Date.parse(response.body.expiresAt) - Date.now()
      // SESSION_TTL defaults to 12 hours.
      expect(expiresInMs).toBeGreaterThan(11 * 3600_000)
      expect(expiresInMs).toBeLessThanOrEqual(12 * 3600_000)
    }))

  it.effect("the email is matched without regard to case", () =>
    Effect.gen(function*() {
      const response = yield* request("POST", "/api/auth/login", {
        body: { email: TEST_ADMIN_EMAIL.toUpperCase(), password: TEST_ADMIN_PASSWORD }
      })
      expect(response.status).toBe(200)
    }))

  it.effect("a wrong password and an unknown email get the same 401", () =>
    Effect.gen(function*() {
      const wrongPassword = yield* request("POST", "/api/auth/login", {
        body: { email: TEST_ADMIN_EMAIL, password: "not-the-password" }
      })
      const unknownEmail = yield* request("POST", "/api/auth/login", {
        body: { email: "nobody@auth.test", password: "not-the-password" }
      })
      expect(wrongPassword.status).toBe(401)
      expect(unknownEmail.status).toBe(401)
      expect(wrongPassword.body).toEqual(INVALID_CREDENTIALS)
      expect(unknownEmail.text).toBe(wrongPassword.text)
    }))

  it.effect("only a hash of the token is stored", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const token = yield* adminToken
      const digest = createHash("sha256").update(token).digest()
      const [row] = yield* sql<{ matches: number; plain: number }>`
        SELECT count(*) FILTER (WHERE token_hash = ${digest})::int AS matches,
               count(*) FILTER (WHERE position(${Buffer.from(token)}::bytea IN token_hash) > 0)::int AS plain
        FROM sessions`
      expect(row).toEqual({ matches: 1, plain: 0 })
    }))

  it.effect("logout revokes that session only; the next call with it is 401", () =>
    Effect.gen(function*() {
      const trader = yield* createTrader
      const token = yield* loginAs(trader.email, TRADER_PASSWORD)
      const otherSession = yield* loginAs(trader.email, TRADER_PASSWORD)
      expect((yield* request("GET", "/api/trader/requisites", { token })).status).toBe(200)

      const logout = yield* request("POST", "/api/auth/logout", { token })
      expect(logout.status).toBe(200)
      expect(logout.body).toEqual({ ok: true })

      const after = yield* request("GET", "/api/trader/requisites", { token })
      expect(after.status).toBe(401)
      expect(after.body).toEqual(INVALID_TOKEN)
      expect((yield* request("POST", "/api/auth/logout", { token })).status).toBe(401)
      // The user's other session is untouched.
      expect((yield* request("GET", "/api/trader/requisites", { token: otherSession })).status).toBe(200)
    }))

  it.effect("a missing, garbage, empty, oversized or non-bearer credential is 401", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<{ readonly name: string; readonly headers: Record<string, string> }> = [
        { name: "no header", headers: {} },
        { name: "garbage token", headers: { authorization: "Bearer garbage" } },
        { name: "empty bearer", headers: { authorization: "Bearer " } },
        { name: "oversized token", headers: { authorization: `Bearer ${"a".repeat(4000)}` } },
        { name: "basic auth", headers: { authorization: `Basic ${Buffer.from(`${TEST_ADMIN_EMAIL}:${TEST_ADMIN_PASSWORD}`).toString("base64")}` } },
        { name: "token without scheme", headers: { authorization: yield* adminToken } }
      ]
      for (const { headers, name } of cases) {
        for (const [method, path] of [["POST", "/api/auth/logout"], ["GET", "/api/trader/requisites"], ["PUT", "/api/admin/exchange-rates"]] as const) {
          const response = yield* request(method, path, { headers })
          expect(response.status, `${name} on ${method} ${path}`).toBe(401)
          expect(response.body, `${name} on ${method} ${path}`).toEqual(INVALID_TOKEN)
        }
      }
    }))

  it.effect("an expired session is 401", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const trader = yield* createTrader
      const token = yield* loginAs(trader.email, TRADER_PASSWORD)
      yield* sql`UPDATE sessions SET expires_at = now() - interval '1 second' WHERE token_hash = ${createHash("sha256").update(token).digest()}`
      expect((yield* request("GET", "/api/trader/requisites", { token })).status).toBe(401)
    }))

  it.effect("a deactivated user can neither log in nor use an existing session", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const trader = yield* createTrader
      const token = yield* loginAs(trader.email, TRADER_PASSWORD)
      yield* sql`UPDATE users SET is_active = false WHERE id = ${trader.userId}`
      const login = yield* request("POST", "/api/auth/login", { body: { email: trader.email, password: TRADER_PASSWORD } })
      expect(login.status).toBe(401)
      expect(login.body).toEqual(INVALID_CREDENTIALS)
      expect((yield* request("GET", "/api/trader/requisites", { token })).status).toBe(401)
    }))

  it.effect("a store API key is not a bearer token", () =>
    Effect.gen(function*() {
      const token = yield* adminToken
      const merchant = yield* request("POST", "/api/admin/merchants", {
        token,
        body: { email: uniqueEmail("merchant"), password: "merchant-password-1", name: "Key Shop" }
      })
      const store = yield* request("POST", "/api/admin/stores", {
        token,
        body: {
          merchantId: merchant.body.id,
          name: "Key Store",
          fiatCurrency: "RUB",
          payinCommissionPct: "2.5",
          payoutCommissionPct: "3",
          processingTtlSeconds: 900
        }
      })
      expect(store.status).toBe(201)
      expect((yield* request("GET", "/api/trader/requisites", { token: store.body.apiKey })).status).toBe(401)
      expect((yield* request("PUT", "/api/admin/exchange-rates", { apiKey: store.body.apiKey, body: { fiat: "RUB", crypto: "USDT", rate: "90" } })).status).toBe(401)
    }))

  it.effect("login, failed login and logout are audited with the user and the client address", () =>
    Effect.gen(function*() {
      const trader = yield* createTrader
      const token = yield* loginAs(trader.email, TRADER_PASSWORD)
      yield* request("POST", "/api/auth/login", { body: { email: trader.email, password: "wrong-password-1" } })
      yield* request("POST", "/api/auth/logout", { token })

      const logins = yield* auditRows("auth.login", trader.userId)
      expect(logins).toHaveLength(1)
      expect(logins[0]).toMatchObject({ userId: trader.userId, userRole: "trader", targetEntity: "user", ipAddress: "127.0.0.1" })

      const failed = (yield* auditRows("auth.login_failed")).filter((row) =>
        (row.details as { email?: string }).email === trader.email
      )
      expect(failed).toHaveLength(1)
      expect(failed[0]!.userId).toBeNull()
      // The attempted password is never recorded.
      expect(JSON.stringify(failed[0]!.details)).not.toContain("wrong-password-1")

      const logouts = yield* auditRows("auth.logout", trader.userId)
      expect(logouts).toHaveLength(1)
      expect(logouts[0]).toMatchObject({ userRole: "trader", targetEntity: "session", ipAddress: "127.0.0.1" })
    }))
})
