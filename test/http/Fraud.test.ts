import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { adminToken, loginAs, request, TestAppLive } from "../support/TestApp.js"

const unique = () => randomBytes(4).toString("hex")

const validRule = () => ({
  name: `burst_${unique()}`,
  entityKind: "ip",
  metric: "count",
  windowSeconds: 60,
  threshold: "10",
  action: "review"
})

const countRows = (table: "fraud_rules" | "fraud_lists") =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ count: number }>`SELECT count(*) AS count FROM ${sql(table)}`, (rows) => rows[0]!.count))

const auditActions = (targetEntity: string, targetId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ action: string }>`SELECT action FROM audit_logs WHERE target_entity = ${targetEntity} AND target_id = ${String(targetId)} ORDER BY id`,
      (rows) => rows.map((row) => row.action)
    ))

/** A trader's session, made through the admin API like a real one. */
const traderToken = Effect.gen(function*() {
  const token = yield* adminToken
  const email = `trader-${unique()}@example.test`
  const password = "trader-password-123"
  const created = yield* request("POST", "/api/admin/traders", {
    token,
    body: { email, password, payinRewardPct: "2", payoutRewardPct: "1" }
  })
  expect(created.status).toBe(201)
  return yield* loginAs(email, password)
})

layer(TestAppLive(), { excludeTestServices: true })("admin fraud API", (it) => {
  it.effect("lists the default rules, creates and deletes a rule, audits both, and refuses a duplicate name", () =>
    Effect.gen(function*() {
      const token = yield* adminToken
      const listed = yield* request("GET", "/api/admin/fraud/rules", { token })
      expect(listed.status).toBe(200)
      expect(listed.body.items.map((rule: any) => rule.name)).toEqual(
        expect.arrayContaining(["ip_orders_per_minute", "customer_orders_per_hour", "customer_amount_per_day"])
      )
      expect(listed.body.items.find((rule: any) => rule.name === "customer_amount_per_day")).toMatchObject({
        entityKind: "customer_id",
        metric: "sum",
        windowSeconds: 86400,
        threshold: "5000000.00",
        action: "review",
        isActive: true
      })

      const rule = validRule()
      const created = yield* request("POST", "/api/admin/fraud/rules", { token, body: rule })
      expect(created.status).toBe(201)
      expect(created.body).toMatchObject({ ...rule, threshold: "10.00", isActive: true })
      expect(typeof created.body.id).toBe("number")
      const duplicate = yield* request("POST", "/api/admin/fraud/rules", { token, body: rule })
      expect(duplicate.status).toBe(409)
      expect(duplicate.body._tag).toBe("Conflict")

      const deleted = yield* request("DELETE", `/api/admin/fraud/rules/${created.body.id}`, { token })
      expect(deleted.status).toBe(204)
      expect((yield* request("DELETE", `/api/admin/fraud/rules/${created.body.id}`, { token })).status).toBe(404)
      expect(yield* auditActions("fraud_rule", created.body.id)).toEqual(["fraud.rule_created", "fraud.rule_deleted"])
    }))

  it.effect("bad rules are 400 naming the field, and nothing is written", () =>
    Effect.gen(function*() {
      const token = yield* adminToken
      const rulesBefore = yield* countRows("fraud_rules")
      const cases: ReadonlyArray<readonly [string, Record<string, unknown>]> = [
        ["name", { name: "Has Spaces" }],
        ["name", { name: "" }],
        ["entityKind", { entityKind: "email" }],
        ["metric", { metric: "avg" }],
        ["windowSeconds", { windowSeconds: 0 }],
        ["windowSeconds", { windowSeconds: 2_592_001 }],
        ["windowSeconds", { windowSeconds: 1.5 }],
        ["threshold", { threshold: "0" }],
        ["threshold", { threshold: "-5" }],
        ["threshold", { threshold: "1e3" }],
        ["threshold", { threshold: "1.234" }],
        ["threshold", { threshold: 10 }],
        ["threshold", { threshold: "2.5" }], // a count cannot be fractional
        ["action", { action: "block" }],
        ["isActive", { isActive: "yes" }]
      ]
      for (const [field, override] of cases) {
        const response = yield* request("POST", "/api/admin/fraud/rules", { token, body: { ...validRule(), ...override } })
        expect([response.status, response.body.field], JSON.stringify(override)).toEqual([400, field])
      }
      const missing = yield* request("POST", "/api/admin/fraud/rules", { token, body: { name: `x_${unique()}` } })
      expect(missing.status).toBe(400)
      expect((yield* request("DELETE", "/api/admin/fraud/rules/abc", { token })).status).toBe(400)
      expect(yield* countRows("fraud_rules")).toBe(rulesBefore)
    }))

  it.effect("creates, lists and deletes list entries; duplicates are 409; bad entries are 400 and write nothing", () =>
    Effect.gen(function*() {
      const token = yield* adminToken
      const expiresAt = new Date(Date.now() + 86_400_000).toISOString()
      const created = yield* request("POST", "/api/admin/fraud/lists", {
        token,
        body: { listType: "black", entityKind: "ip", value: " 203.0.113.7 ", reason: "card testing", expiresAt }
      })
      expect(created.status).toBe(201)
      expect(created.body).toMatchObject({
        listType: "black",
        entityKind: "ip",
        value: "203.0.113.7",
        reason: "card testing",
        expiresAt
      })
      const duplicate = yield* request("POST", "/api/admin/fraud/lists", {
        token,
        body: { listType: "black", entityKind: "ip", value: "203.0.113.7" }
      })
      expect(duplicate.status).toBe(409)
      const white = yield* request("POST", "/api/admin/fraud/lists", {
        token,
        body: { listType: "white", entityKind: "customer_id", value: "vip-customer" }
      })
      expect(white.status).toBe(201)
      expect(white.body).toMatchObject({ reason: null, expiresAt: null })

      const listed = yield* request("GET", "/api/admin/fraud/lists?limit=1", { token })
      expect(listed.status).toBe(200)
      expect(listed.body.total).toBe(2)
      expect(listed.body.items).toHaveLength(1)
      expect((yield* request("GET", "/api/admin/fraud/lists?limit=0", { token })).status).toBe(400)

      const entriesBefore = yield* countRows("fraud_lists")
      const cases: ReadonlyArray<readonly [string, Record<string, unknown>]> = [
        ["listType", { listType: "grey" }],
        ["entityKind", { entityKind: "email" }],
        ["value", { value: "" }],
        ["value", { value: "x".repeat(257) }],
        ["value", { entityKind: "ip", value: "not-an-ip" }],
        ["value", { entityKind: "store", value: "store-1" }],
        ["value", { value: "tab\tinside" }],
        ["reason", { reason: "r".repeat(501) }],
        ["expiresAt", { expiresAt: "tomorrow" }],
        ["expiresAt", { expiresAt: "2001-01-01T00:00:00Z" }]
      ]
      for (const [field, override] of cases) {
        const body = { listType: "black", entityKind: "customer_id", value: `c-${unique()}`, ...override }
        const response = yield* request("POST", "/api/admin/fraud/lists", { token, body })
        expect([response.status, response.body.field], JSON.stringify(override)).toEqual([400, field])
      }
      expect(yield* countRows("fraud_lists")).toBe(entriesBefore)

      expect((yield* request("DELETE", `/api/admin/fraud/lists/${created.body.id}`, { token })).status).toBe(204)
      expect((yield* request("DELETE", `/api/admin/fraud/lists/${created.body.id}`, { token })).status).toBe(404)
      expect(yield* auditActions("fraud_list", created.body.id)).toEqual([
        "fraud.list_entry_created",
        "fraud.list_entry_deleted"
      ])
    }))

  it.effect("only admins may read or change fraud rules and lists", () =>
    Effect.gen(function*() {
      const token = yield* traderToken
      const rulesBefore = yield* countRows("fraud_rules")
      const entriesBefore = yield* countRows("fraud_lists")
      const attempts = [
        request("GET", "/api/admin/fraud/rules", { token }),
        request("POST", "/api/admin/fraud/rules", { token, body: validRule() }),
        request("DELETE", "/api/admin/fraud/rules/1", { token }),
        request("GET", "/api/admin/fraud/lists", { token }),
        request("POST", "/api/admin/fraud/lists", { token, body: { listType: "white", entityKind: "ip", value: "198.51.100.1" } }),
        request("DELETE", "/api/admin/fraud/lists/1", { token })
      ]
      for (const attempt of attempts) {
        const response = yield* attempt
        expect([response.status, response.body._tag]).toEqual([403, "Forbidden"])
      }
      expect((yield* request("GET", "/api/admin/fraud/rules")).status).toBe(401)
      expect(yield* countRows("fraud_rules")).toBe(rulesBefore)
      expect(yield* countRows("fraud_lists")).toBe(entriesBefore)
    }))
})
