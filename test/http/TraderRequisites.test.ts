import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { adminToken, loginAs, request, TestAppLive } from "../support/TestApp.js"

const PASSWORD = "trader-password-123"
const uniqueEmail = (prefix: string) => `${prefix}-${randomBytes(5).toString("hex")}@requisites.test`

const settings = {
  payinEnabled: true,
  payoutEnabled: false,
  minAmount: "100",
  maxAmount: "50000.5",
  dailyTurnoverLimit: "300000",
  monthlyTurnoverLimit: "3000000.00",
  maxOrdersPerDay: 50,
  maxOpenOrders: 3
}

const requisiteBody = (overrides: Record<string, unknown> = {}) => ({
  paymentMethod: "card",
  bankCode: "sber",
  fiatCurrency: "RUB",
  details: "2200 1234 5678 9012",
  holderName: "Ivan Petrov",
  settings,
  ...overrides
})

/** A trader created by the admin and logged in. */
const newTrader = Effect.gen(function*() {
  const email = uniqueEmail("trader")
  const created = yield* request("POST", "/api/admin/traders", {
    token: yield* adminToken,
    body: { email, password: PASSWORD, payinRewardPct: "2", payoutRewardPct: "2.5" }
  })
  expect(created.status).toBe(201)
  return { traderId: created.body.id as number, token: yield* loginAs(email, PASSWORD) }
})

const createRequisite = (token: string, overrides: Record<string, unknown> = {}) =>
  Effect.map(request("POST", "/api/trader/requisites", { token, body: requisiteBody(overrides) }), (response) => {
    expect(response.status, response.text).toBe(201)
    return response.body as { id: number } & Record<string, unknown>
  })

const requisiteCounts = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ requisites: number; settings: number }>`
      SELECT (SELECT count(*) FROM requisites)::int AS requisites,
             (SELECT count(*) FROM full_requisites_settings)::int AS settings`,
    (rows) => rows[0]!
  ))

layer(TestAppLive(), { excludeTestServices: true })("trader requisites", (it) => {
  it.effect("create returns 201 with the requisite and its settings, as stored", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const trader = yield* newTrader
      const created = yield* createRequisite(trader.token)
      expect(created).toEqual({
        id: created.id,
        status: "active",
        paymentMethod: "card",
        bankCode: "sber",
        fiatCurrency: "RUB",
        details: "2200 1234 5678 9012",
        holderName: "Ivan Petrov",
        lastAssignedAt: null,
        settings: {
          payinEnabled: true,
          payoutEnabled: false,
          minAmount: "100.00",
          maxAmount: "50000.50",
          dailyTurnoverLimit: "300000.00",
          monthlyTurnoverLimit: "3000000.00",
          maxOrdersPerDay: 50,
          maxOpenOrders: 3
        }
      })
      const [row] = yield* sql<Record<string, unknown>>`
        SELECT r.trader_id, s.min_amount, s.max_amount FROM requisites r
        JOIN full_requisites_settings s ON s.requisite_id = r.id WHERE r.id = ${created.id}`
      expect(row).toEqual({ traderId: trader.traderId, minAmount: "100.00", maxAmount: "50000.50" })
      const audits = yield* sql`SELECT 1 FROM audit_logs WHERE action = 'requisite.created' AND target_id = ${String(created.id)}`
      expect(audits).toHaveLength(1)
    }))

  it.effect("list and get show only the trader's own requisites", () =>
    Effect.gen(function*() {
      const alice = yield* newTrader
      const bob = yield* newTrader
      const first = yield* createRequisite(alice.token)
      const second = yield* createRequisite(alice.token, { paymentMethod: "sbp", bankCode: "tinkoff", details: "+79001234567" })
      const bobs = yield* createRequisite(bob.token, { bankCode: "alfa" })

      const list = yield* request("GET", "/api/trader/requisites", { token: alice.token })
      expect(list.status).toBe(200)
      expect(list.body.items.map((item: { id: number }) => item.id)).toEqual([first.id, second.id])
      const bobList = yield* request("GET", "/api/trader/requisites", { token: bob.token })
      expect(bobList.body.items.map((item: { id: number }) => item.id)).toEqual([bobs.id])

      const got = yield* request("GET", `/api/trader/requisites/${second.id}`, { token: alice.token })
      expect(got.status).toBe(200)
      expect(got.body).toEqual(second)
    }))

  it.effect("another trader's requisite is 404 on get and patch, and stays unchanged", () =>
    Effect.gen(function*() {
      const alice = yield* newTrader
      const bob = yield* newTrader
      const bobs = yield* createRequisite(bob.token)
      const get = yield* request("GET", `/api/trader/requisites/${bobs.id}`, { token: alice.token })
      expect(get.status).toBe(404)
      expect(get.body._tag).toBe("NotFound")
      const patch = yield* request("PATCH", `/api/trader/requisites/${bobs.id}`, {
        token: alice.token,
        body: { status: "inactive", holderName: "Mallory", settings: { maxAmount: "1.00" } }
      })
      expect(patch.status).toBe(404)
      // Same answer as for an id that does not exist at all: existence is not leaked.
      const missing = yield* request("PATCH", `/api/trader/requisites/987654321`, { token: alice.token, body: { status: "inactive" } })
      expect(missing.status).toBe(404)
      expect(missing.body).toEqual({ ...patch.body, message: missing.body.message })
      expect((yield* request("GET", `/api/trader/requisites/${bobs.id}`, { token: bob.token })).body).toEqual(bobs)
    }))

  it.effect("patch sets the status and details, and patches settings partially", () =>
    Effect.gen(function*() {
      const trader = yield* newTrader
      const created = yield* createRequisite(trader.token)
      const path = `/api/trader/requisites/${created.id}`

      const inactive = yield* request("PATCH", path, { token: trader.token, body: { status: "inactive" } })
      expect(inactive.status).toBe(200)
      expect(inactive.body).toEqual({ ...created, status: "inactive" })

      const partial = yield* request("PATCH", path, {
        token: trader.token,
        body: { holderName: "Ivan P.", settings: { maxAmount: "20000", payoutEnabled: true } }
      })
      expect(partial.status).toBe(200)
      expect(partial.body).toEqual({
        ...created,
        status: "inactive",
        holderName: "Ivan P.",
        settings: { ...created.settings as object, maxAmount: "20000.00", payoutEnabled: true }
      })

      const active = yield* request("PATCH", path, { token: trader.token, body: { status: "active" } })
      expect(active.body.status).toBe("active")
      expect((yield* request("GET", path, { token: trader.token })).body).toEqual(active.body)
    }))

  it.effect("min above max and daily above monthly are 400 naming the field, on create and on patch", () =>
    Effect.gen(function*() {
      const trader = yield* newTrader
      const created = yield* createRequisite(trader.token)
      const before = yield* requisiteCounts

      const createMinMax = yield* request("POST", "/api/trader/requisites", {
        token: trader.token,
        body: requisiteBody({ settings: { ...settings, minAmount: "60000", maxAmount: "50000" } })
      })
      expect(createMinMax.status).toBe(400)
      expect(createMinMax.body).toMatchObject({ _tag: "ValidationError", field: "settings.minAmount" })
      expect(createMinMax.body.message).toContain("settings.minAmount")

      const createDaily = yield* request("POST", "/api/trader/requisites", {
        token: trader.token,
        body: requisiteBody({ settings: { ...settings, dailyTurnoverLimit: "4000000" } })
      })
      expect(createDaily.status).toBe(400)
      expect(createDaily.body).toMatchObject({ _tag: "ValidationError", field: "settings.dailyTurnoverLimit" })

      // The patch is checked against the stored settings it does not replace.
      const patchMin = yield* request("PATCH", `/api/trader/requisites/${created.id}`, {
        token: trader.token,
        body: { holderName: "Changed", settings: { minAmount: "50000.51" } }
      })
      expect(patchMin.status).toBe(400)
      expect(patchMin.body).toMatchObject({ _tag: "ValidationError", field: "settings.minAmount" })

      expect(yield* requisiteCounts).toEqual(before)
      expect((yield* request("GET", `/api/trader/requisites/${created.id}`, { token: trader.token })).body).toEqual(created)
    }))

  it.effect("an unknown bank, payment method or currency is 400 naming the field; nothing written", () =>
    Effect.gen(function*() {
      const trader = yield* newTrader
      const before = yield* requisiteCounts
      for (
        const [field, value] of [
          ["bankCode", "monobank"],
          ["paymentMethod", "cash"],
          ["fiatCurrency", "EUR"]
        ] as const
      ) {
        const response = yield* request("POST", "/api/trader/requisites", { token: trader.token, body: requisiteBody({ [field]: value }) })
        expect(response.status, field).toBe(400)
        expect(response.body, field).toMatchObject({ _tag: "ValidationError", field })
        expect(response.body.message).toContain(field)
      }
      expect(yield* requisiteCounts).toEqual(before)
    }))

  it.effect("a blocked requisite's status cannot be changed by its trader", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const trader = yield* newTrader
      const created = yield* createRequisite(trader.token)
      yield* sql`UPDATE requisites SET status = 'blocked' WHERE id = ${created.id}`
      const response = yield* request("PATCH", `/api/trader/requisites/${created.id}`, {
        token: trader.token,
        body: { status: "active" }
      })
      expect(response.status).toBe(400)
      expect(response.body).toMatchObject({ _tag: "ValidationError", field: "status" })
      const [row] = yield* sql<{ status: string }>`SELECT status FROM requisites WHERE id = ${created.id}`
      expect(row!.status).toBe("blocked")
      // Nor can a trader block one: "blocked" is not a status a trader may set.
      const other = yield* createRequisite(trader.token)
      const block = yield* request("PATCH", `/api/trader/requisites/${other.id}`, { token: trader.token, body: { status: "blocked" } })
      expect(block.status).toBe(400)
      expect(block.body.field).toBe("status")
    }))

  it.effect("the work switch turns the trader in and out of work", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const trader = yield* newTrader
      const inWork = () =>
        Effect.map(sql<{ inWork: boolean }>`SELECT in_work FROM traders WHERE id = ${trader.traderId}`, (rows) => rows[0]!.inWork)
      expect(yield* inWork()).toBe(false)
      const on = yield* request("POST", "/api/trader/work", { token: trader.token, body: { inWork: true } })
      expect(on.status).toBe(200)
      expect(on.body).toEqual({ inWork: true })
      expect(yield* inWork()).toBe(true)
      const off = yield* request("POST", "/api/trader/work", { token: trader.token, body: { inWork: false } })
      expect(off.body).toEqual({ inWork: false })
      expect(yield* inWork()).toBe(false)
      const audits = yield* sql<{ action: string }>`
        SELECT action FROM audit_logs WHERE target_entity = 'trader' AND target_id = ${String(trader.traderId)} ORDER BY id`
      expect(audits.map((row) => row.action)).toEqual(["admin.trader_created", "trader.work_started", "trader.work_stopped"])
    }))

  it.effect("admin and merchant tokens are 403 on every trader route, no token 401", () =>
    Effect.gen(function*() {
      const token = yield* adminToken
      const trader = yield* newTrader
      const requisite = yield* createRequisite(trader.token)
      const merchantEmail = uniqueEmail("merchant")
      yield* request("POST", "/api/admin/merchants", { token, body: { email: merchantEmail, password: PASSWORD, name: "Shop" } })
      const merchantToken = yield* loginAs(merchantEmail, PASSWORD)
      const before = yield* requisiteCounts

      const routes: ReadonlyArray<readonly [string, string, unknown]> = [
        ["GET", "/api/trader/requisites", undefined],
        ["POST", "/api/trader/requisites", requisiteBody()],
        ["GET", `/api/trader/requisites/${requisite.id}`, undefined],
        ["PATCH", `/api/trader/requisites/${requisite.id}`, { status: "inactive" }],
        ["POST", "/api/trader/work", { inWork: true }]
      ]
      for (const [method, path, body] of routes) {
        for (const [who, callerToken] of [["admin", token], ["merchant", merchantToken]] as const) {
          const response = yield* request(method, path, { token: callerToken, body })
          expect(response.status, `${who} ${method} ${path}`).toBe(403)
          expect(response.body._tag).toBe("Forbidden")
        }
        const anonymous = yield* request(method, path, { body })
        expect(anonymous.status, `anonymous ${method} ${path}`).toBe(401)
      }
      expect(yield* requisiteCounts).toEqual(before)
      expect((yield* request("GET", `/api/trader/requisites/${requisite.id}`, { token: trader.token })).body).toEqual(requisite)
    }))
})
