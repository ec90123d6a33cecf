import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { adminToken, loginAs, request, TEST_ADMIN_EMAIL, TestAppLive, TestServer } from "../support/TestApp.js"

/**
 * SPEC §8 "Bad input": every endpoint built so far rejects malformed, oversized, mistyped, missing,
 * negative, non-decimal and out-of-range input with the right 4xx, a JSON body `{_tag, message}`
 * whose message names the field, and nothing written. Table-driven: each endpoint lists its fields
 * with the kind of value they take, and each kind brings its own bad values.
 */

const PASSWORD = "a-long-password-1"
const MAX_BODY_BYTES = 64 * 1024
const uniqueEmail = (prefix: string) => `${prefix}-${randomBytes(5).toString("hex")}@bad-input.test`

// ---------------------------------------------------------------------------------------------
// Bad values by kind of field

const badValueTable = {
  /** A positive fiat amount, at most 2 decimals, ≤ 1 000 000 000.00. */
  amountFiat: [
    "-1", "-0.01", "0", "0.00", "abc", "1.234", "100.001", "1e3", "1E3", "0x10", " 100", "100 ", "+100", "0100",
    "100.", ".5", "NaN", "Infinity", "", "1000000000.01", "99999999999999999999", 100, 100.5, null, true, {}, []
  ],
  /** A percentage 0 ≤ p < 100, at most 4 decimals. */
  percent: ["-1", "-0.0001", "100", "100.0001", "250", "1.23456", "1e1", "abc", "", " 2", "2,5", 2.5, null, false],
  /** An exchange rate > 0, at most 8 decimals. */
  rate: ["0", "0.00000000", "-92.5", "abc", "1.123456789", "9e1", "", "12345678901234567.5", 92.5, null],
  email: ["not-an-email", "a@b", "@b.co", " a@b.co", "a@b.co ", "a b@c.co", `${"a".repeat(250)}@b.co`, "", 42, null, []],
  newPassword: ["short", "", "x".repeat(257), 1234567890, null],
  name: ["", " padded", "padded ", "n".repeat(129), 5, null, {}],
  holderName: ["", " Ivan", "n".repeat(129), 7, null],
  ttlSeconds: [59, 604_801, 0, -1, 900.5, "900", null],
  count: [0, -1, 1.5, "5", 1_000_001, null],
  boolean: ["true", "false", 1, 0, null],
  fiatCode: ["rub", "RUBL", "RU", "", "R U", 643, null],
  cryptoCode: ["usdt", "U", "USDT-ERC20", "", 1, null],
  referenceCode: ["Card", "c", "x".repeat(33), "card!", "", 1, null],
  details: ["123", "x".repeat(65), "2200<script>", "", 2200123412341234, null],
  httpUrl: ["ftp://files.example.com", "not a url", "javascript:alert(1)", `https://example.com/${"a".repeat(2050)}`, 5, null],
  entityId: ["1", 0, -1, 1.5, 2 ** 53, null, "abc"],
  priority: [1001, -1001, 1.5, "1"],
  requisiteStatus: ["blocked", "deleted", "ACTIVE", "", 1, null],
  loginEmail: [42, null, `${"a".repeat(250)}@b.co`, {}],
  loginPassword: [42, null, "p".repeat(257), []]
} as const satisfies Record<string, ReadonlyArray<unknown>>
type Kind = keyof typeof badValueTable
const badValues: Record<Kind, ReadonlyArray<unknown>> = badValueTable

/** Path ids that are not ids: all 400 naming `id`. */
const badPathIds = ["abc", "1.5", "-1", "0", "99999999999999999999", "1%3BDROP", "NaN"]

// ---------------------------------------------------------------------------------------------
// The endpoints

interface Context {
  readonly adminToken: string
  readonly traderToken: string
  readonly merchantId: number
  readonly requisiteId: number
}

interface FieldSpec {
  /** Dotted path in the body, e.g. "settings.minAmount". */
  readonly field: string
  readonly kind: Kind
  readonly required: boolean
}

interface Endpoint {
  readonly name: string
  readonly method: "POST" | "PUT" | "PATCH"
  readonly path: (context: Context) => string
  readonly token: (context: Context) => string
  /** A body that succeeds; every case breaks exactly one thing in it. */
  readonly valid: (context: Context) => Record<string, unknown>
  readonly validStatus: number
  readonly fields: ReadonlyArray<FieldSpec>
  /** For endpoints that change a row instead of adding one: its state, compared before and after. */
  readonly state?: (context: Context) => Effect.Effect<unknown, unknown, SqlClient.SqlClient | TestServer>
  /** Path ids are part of the input too. */
  readonly pathWithId?: (context: Context, id: string) => string
}

const settingsFields: ReadonlyArray<FieldSpec> = [
  { field: "settings.payinEnabled", kind: "boolean", required: true },
  { field: "settings.payoutEnabled", kind: "boolean", required: true },
  { field: "settings.minAmount", kind: "amountFiat", required: true },
  { field: "settings.maxAmount", kind: "amountFiat", required: true },
  { field: "settings.dailyTurnoverLimit", kind: "amountFiat", required: true },
  { field: "settings.monthlyTurnoverLimit", kind: "amountFiat", required: true },
  { field: "settings.maxOrdersPerDay", kind: "count", required: true },
  { field: "settings.maxOpenOrders", kind: "count", required: true }
]

const validSettings = {
  payinEnabled: true,
  payoutEnabled: true,
  minAmount: "100.00",
  maxAmount: "50000.00",
  dailyTurnoverLimit: "300000.00",
  monthlyTurnoverLimit: "3000000.00",
  maxOrdersPerDay: 50,
  maxOpenOrders: 3
}

const requisiteState = (context: Context) =>
  Effect.map(
    request("GET", `/api/trader/requisites/${context.requisiteId}`, { token: context.traderToken }),
    (response) => response.body
  )

const endpoints: ReadonlyArray<Endpoint> = [
  {
    name: "POST /api/auth/login",
    method: "POST",
    path: () => "/api/auth/login",
    token: () => "",
    valid: () => ({ email: TEST_ADMIN_EMAIL, password: "admin-password-for-tests" }),
    validStatus: 200,
    fields: [
      { field: "email", kind: "loginEmail", required: true },
      { field: "password", kind: "loginPassword", required: true }
    ]
  },
  {
    name: "POST /api/admin/merchants",
    method: "POST",
    path: () => "/api/admin/merchants",
    token: (context) => context.adminToken,
    valid: () => ({ email: uniqueEmail("merchant"), password: PASSWORD, name: "Shop" }),
    validStatus: 201,
    fields: [
      { field: "email", kind: "email", required: true },
      { field: "password", kind: "newPassword", required: true },
      { field: "name", kind: "name", required: true }
    ]
  },
  {
    name: "POST /api/admin/stores",
    method: "POST",
    path: () => "/api/admin/stores",
    token: (context) => context.adminToken,
    valid: (context) => ({
      merchantId: context.merchantId,
      name: "Store",
      fiatCurrency: "RUB",
      payinCommissionPct: "2.5",
      payoutCommissionPct: "3",
      processingTtlSeconds: 900,
      callbackUrl: "https://shop.example.com/callback",
      gatewayRequireCustomerIdParam: false,
      gatewayRequireAmountParam: true
    }),
    validStatus: 201,
    fields: [
      { field: "merchantId", kind: "entityId", required: true },
      { field: "name", kind: "name", required: true },
      { field: "fiatCurrency", kind: "fiatCode", required: true },
      { field: "payinCommissionPct", kind: "percent", required: true },
      { field: "payoutCommissionPct", kind: "percent", required: true },
      { field: "processingTtlSeconds", kind: "ttlSeconds", required: true },
      { field: "callbackUrl", kind: "httpUrl", required: false },
      { field: "gatewayRequireCustomerIdParam", kind: "boolean", required: false },
      { field: "gatewayRequireAmountParam", kind: "boolean", required: false }
    ]
  },
  {
    name: "POST /api/admin/traders",
    method: "POST",
    path: () => "/api/admin/traders",
    token: (context) => context.adminToken,
    valid: () => ({ email: uniqueEmail("trader"), password: PASSWORD, payinRewardPct: "2", payoutRewardPct: "2.5", priority: 3 }),
    validStatus: 201,
    fields: [
      { field: "email", kind: "email", required: true },
      { field: "password", kind: "newPassword", required: true },
      { field: "payinRewardPct", kind: "percent", required: true },
      { field: "payoutRewardPct", kind: "percent", required: true },
      { field: "priority", kind: "priority", required: false }
    ]
  },
  {
    name: "PUT /api/admin/exchange-rates",
    method: "PUT",
    path: () => "/api/admin/exchange-rates",
    token: (context) => context.adminToken,
    valid: () => ({ fiat: "RUB", crypto: "USDT", rate: "92.5" }),
    validStatus: 200,
    fields: [
      { field: "fiat", kind: "fiatCode", required: true },
      { field: "crypto", kind: "cryptoCode", required: true },
      { field: "rate", kind: "rate", required: true }
    ]
  },
  {
    name: "POST /api/trader/requisites",
    method: "POST",
    path: () => "/api/trader/requisites",
    token: (context) => context.traderToken,
    valid: () => ({
      paymentMethod: "card",
      bankCode: "sber",
      fiatCurrency: "RUB",
      details: "2200 1234 5678 9012",
      holderName: "Ivan Petrov",
      settings: validSettings
    }),
    validStatus: 201,
    fields: [
      { field: "paymentMethod", kind: "referenceCode", required: true },
      { field: "bankCode", kind: "referenceCode", required: true },
      { field: "fiatCurrency", kind: "fiatCode", required: true },
      { field: "details", kind: "details", required: true },
      { field: "holderName", kind: "holderName", required: true },
      { field: "settings", kind: "boolean", required: true },
      ...settingsFields
    ]
  },
  {
    name: "PATCH /api/trader/requisites/{id}",
    method: "PATCH",
    path: (context) => `/api/trader/requisites/${context.requisiteId}`,
    pathWithId: (_, id) => `/api/trader/requisites/${id}`,
    token: (context) => context.traderToken,
    valid: () => ({
      details: "2200 0000 0000 0001",
      holderName: "Ivan P.",
      status: "active",
      settings: { ...validSettings, maxAmount: "40000.00" }
    }),
    validStatus: 200,
    fields: [
      { field: "details", kind: "details", required: false },
      { field: "holderName", kind: "holderName", required: false },
      { field: "status", kind: "requisiteStatus", required: false },
      ...settingsFields.map((spec) => ({ ...spec, required: false }))
    ],
    state: requisiteState
  },
  {
    name: "POST /api/trader/work",
    method: "POST",
    path: () => "/api/trader/work",
    token: (context) => context.traderToken,
    valid: () => ({ inWork: true }),
    validStatus: 200,
    fields: [{ field: "inWork", kind: "boolean", required: true }],
    state: () =>
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT id, in_work FROM traders ORDER BY id`)
  }
]

// ---------------------------------------------------------------------------------------------
// Cases

interface Case {
  readonly name: string
  readonly body?: unknown
  readonly rawBody?: string
  readonly headers?: Record<string, string>
  readonly path?: string
  readonly status: number
  readonly tag?: string
  /** The field the answer must name (`field` property and message). */
  readonly field?: string
}

const setPath = (body: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> => {
  const [head, ...rest] = path.split(".")
  if (rest.length === 0) return { ...body, [head!]: value }
  return { ...body, [head!]: setPath((body[head!] ?? {}) as Record<string, unknown>, rest.join("."), value) }
}

const omitPath = (body: Record<string, unknown>, path: string): Record<string, unknown> => {
  const [head, ...rest] = path.split(".")
  if (rest.length === 0) {
    const { [head!]: _, ...others } = body
    return others
  }
  return { ...body, [head!]: omitPath(body[head!] as Record<string, unknown>, rest.join(".")) }
}

const JSON_HEADERS = { "content-type": "application/json" }

const casesFor = (endpoint: Endpoint, context: Context): ReadonlyArray<Case> => {
  const valid = endpoint.valid(context)
  const structural: ReadonlyArray<Case> = [
    { name: "malformed JSON", rawBody: "{\"email\": ", headers: JSON_HEADERS, status: 400, tag: "ValidationError", field: "body" },
    { name: "trailing comma", rawBody: `${JSON.stringify(valid).slice(0, -1)},}`, headers: JSON_HEADERS, status: 400, tag: "ValidationError" },
    { name: "not JSON at all", rawBody: "email=a@b.co", headers: JSON_HEADERS, status: 400, tag: "ValidationError" },
    { name: "empty body", rawBody: "", headers: JSON_HEADERS, status: 400 },
    { name: "JSON null", body: null, status: 400 },
    { name: "JSON array", body: [valid], status: 400 },
    { name: "JSON string", body: JSON.stringify(valid), status: 400 },
    { name: "JSON number", body: 42, status: 400 },
    {
      name: "body over MAX_BODY_BYTES",
      body: { ...valid, padding: "x".repeat(MAX_BODY_BYTES) },
      status: 413,
      tag: "PayloadTooLarge"
    },
    { name: "valid JSON as text/plain", rawBody: JSON.stringify(valid), headers: { "content-type": "text/plain" }, status: 400 }
  ]
  const perField = endpoint.fields.flatMap((spec): ReadonlyArray<Case> => [
    ...(spec.required
      ? [{ name: `${spec.field} missing`, body: omitPath(valid, spec.field), status: 400, field: spec.field }]
      : []),
    ...badValues[spec.kind].map((value): Case => ({
      name: `${spec.field} = ${JSON.stringify(value)?.slice(0, 40)}`,
      body: setPath(valid, spec.field, value),
      status: 400,
      field: spec.field
    }))
  ])
  const pathIds = endpoint.pathWithId === undefined ? [] : badPathIds.map((id): Case => ({
    name: `path id ${id}`,
    path: endpoint.pathWithId!(context, id),
    body: valid,
    status: 400,
    field: "id"
  }))
  return [...structural, ...perField, ...pathIds]
}

/** Rows of every table the endpoints so far can write. */
const tableCounts = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<Record<string, number>>`
    SELECT (SELECT count(*) FROM users)::int AS users,
           (SELECT count(*) FROM sessions)::int AS sessions,
           (SELECT count(*) FROM merchants)::int AS merchants,
           (SELECT count(*) FROM merchant_stores)::int AS stores,
           (SELECT count(*) FROM balance_stores)::int AS store_balances,
           (SELECT count(*) FROM traders)::int AS traders,
           (SELECT count(*) FROM balance_traders)::int AS trader_balances,
           (SELECT count(*) FROM exchange_rates)::int AS exchange_rates,
           (SELECT count(*) FROM requisites)::int AS requisites,
           (SELECT count(*) FROM full_requisites_settings)::int AS requisite_settings,
           (SELECT count(*) FROM audit_logs)::int AS audit_logs`
  return row!
})

const makeContext = Effect.gen(function*() {
  const token = yield* adminToken
  const merchant = yield* request("POST", "/api/admin/merchants", {
    token,
    body: { email: uniqueEmail("merchant"), password: PASSWORD, name: "Shop" }
  })
  const traderEmail = uniqueEmail("trader")
  yield* request("POST", "/api/admin/traders", {
    token,
    body: { email: traderEmail, password: PASSWORD, payinRewardPct: "2", payoutRewardPct: "2" }
  })
  const traderToken = yield* loginAs(traderEmail, PASSWORD)
  const requisite = yield* request("POST", "/api/trader/requisites", {
    token: traderToken,
    body: endpoints.find((endpoint) => endpoint.name === "POST /api/trader/requisites")!.valid({} as Context)
  })
  expect(requisite.status).toBe(201)
  const context: Context = { adminToken: token, traderToken, merchantId: merchant.body.id, requisiteId: requisite.body.id }
  return context
})

layer(TestAppLive(), { excludeTestServices: true })("bad input", (it) => {
  for (const endpoint of endpoints) {
    it.effect(`${endpoint.name}: every bad input is a 4xx naming the field, and nothing is written`, () =>
      Effect.gen(function*() {
        const context = yield* makeContext
        const token = endpoint.token(context)
        const stateBefore = endpoint.state === undefined ? undefined : yield* endpoint.state(context)
        const countsBefore = yield* tableCounts
        const cases = casesFor(endpoint, context)
        expect(cases.length).toBeGreaterThan(10)

        for (const testCase of cases) {
          const response = yield* request(endpoint.method, testCase.path ?? endpoint.path(context), {
            ...(token === "" ? {} : { token }),
            ...(testCase.rawBody === undefined ? { body: testCase.body } : { rawBody: testCase.rawBody }),
            ...(testCase.headers === undefined ? {} : { headers: testCase.headers })
          })
          const label = `${endpoint.name} · ${testCase.name} → ${response.status} ${response.text.slice(0, 300)}`
          expect(response.status, label).toBe(testCase.status)
          expect(typeof response.body?._tag, label).toBe("string")
          expect(typeof response.body?.message, label).toBe("string")
          if (testCase.tag !== undefined) expect(response.body._tag, label).toBe(testCase.tag)
          if (testCase.field !== undefined) {
            expect(response.body.field, label).toBe(testCase.field)
            expect(response.body.message, label).toContain(testCase.field.split(".").at(-1))
          }
        }

        expect(yield* tableCounts, `${endpoint.name}: rows written by bad input`).toEqual(countsBefore)
        if (endpoint.state !== undefined) expect(yield* endpoint.state(context)).toEqual(stateBefore)

        // The table proves something only if the unbroken body is accepted.
        const accepted = yield* request(endpoint.method, endpoint.path(context), {
          ...(token === "" ? {} : { token }),
          body: endpoint.valid(context)
        })
        expect(accepted.status, `${endpoint.name} valid body: ${accepted.text}`).toBe(endpoint.validStatus)
      }))
  }

  it.effect("POST /api/auth/logout: an oversized body is 413 and the session is not revoked", () =>
    Effect.gen(function*() {
      const context = yield* makeContext
      const countsBefore = yield* tableCounts
      const response = yield* request("POST", "/api/auth/logout", {
        token: context.traderToken,
        body: { padding: "x".repeat(MAX_BODY_BYTES) }
      })
      expect(response.status).toBe(413)
      expect(response.body._tag).toBe("PayloadTooLarge")
      expect(yield* tableCounts).toEqual(countsBefore)
      expect((yield* request("GET", "/api/trader/requisites", { token: context.traderToken })).status).toBe(200)
    }))

  it.effect("GET /api/trader/requisites/{id}: non-numeric ids are 400 naming the field, unknown ids 404", () =>
    Effect.gen(function*() {
      const context = yield* makeContext
      for (const id of badPathIds) {
        const response = yield* request("GET", `/api/trader/requisites/${id}`, { token: context.traderToken })
        expect(response.status, id).toBe(400)
        expect(response.body.field, id).toBe("id")
      }
      const unknown = yield* request("GET", "/api/trader/requisites/987654321", { token: context.traderToken })
      expect(unknown.status).toBe(404)
      expect(unknown.body._tag).toBe("NotFound")
    }))

  it.effect("a body over the limit sent without Content-Length is cut off, and nothing is written", () =>
    Effect.gen(function*() {
      const context = yield* makeContext
      const { baseUrl } = yield* TestServer
      const countsBefore = yield* tableCounts
      const outcome = yield* Effect.promise(async () => {
        const encoder = new TextEncoder()
        const head = encoder.encode(`{"email":"${uniqueEmail("chunked")}","password":"${PASSWORD}","name":"Chunked","padding":"`)
        const filler = encoder.encode("x".repeat(16 * 1024))
        let chunks = 0
        // A stream has no length: the server only learns the size while reading.
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (chunks === 0) controller.enqueue(head)
            else if (chunks <= 8) controller.enqueue(filler)
            else {
              controller.enqueue(encoder.encode("\"}"))
              controller.close()
            }
            chunks++
          }
        })
        try {
          const response = await fetch(`${baseUrl}/api/admin/merchants`, {
            method: "POST",
            body,
            duplex: "half",
            headers: { "content-type": "application/json", authorization: `Bearer ${context.adminToken}` }
          } as RequestInit)
          return { status: response.status }
        } catch {
          return { status: "connection closed" as const }
        }
      })
      // The server stops reading at MAX_BODY_BYTES: either a 413 arrives or the connection is closed.
      expect([413, "connection closed"]).toContain(outcome.status)
      expect(yield* tableCounts).toEqual(countsBefore)
      expect((yield* request("GET", "/health")).status).toBe(200)
    }))

  it.effect("an unknown route answers 404 with the JSON error shape", () =>
    Effect.gen(function*() {
      const response = yield* request("GET", "/api/admin/does-not-exist", { token: yield* adminToken })
      expect(response.status).toBe(404)
      expect(typeof response.body._tag).toBe("string")
      expect(typeof response.body.message).toBe("string")
    }))
})
