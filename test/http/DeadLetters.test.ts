import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { createIncomingOrder, createStore } from "../support/fixtures.js"
import { adminToken, loginAs, request, TestAppLive } from "../support/TestApp.js"

const PASSWORD = "a-long-password-1"

/** A trader user created through the admin API, logged in: a role that must not see dead letters. */
const traderToken = Effect.gen(function*() {
  const email = `trader-${randomBytes(5).toString("hex")}@dead.test`
  const created = yield* request("POST", "/api/admin/traders", {
    token: yield* adminToken,
    body: { email, password: PASSWORD, payinRewardPct: "2", payoutRewardPct: "2" }
  })
  expect(created.status).toBe(201)
  return yield* loginAs(email, PASSWORD)
})

layer(TestAppLive(), { excludeTestServices: true })("dead letters (admin)", (it) => {
  it.effect("lists incoming orders by status and retries a failed one: 200, audited, back in the queue", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const token = yield* adminToken
      const { storeId } = yield* createStore()
      const failed = yield* createIncomingOrder({ storeId, status: "failed" })
      yield* sql`UPDATE incoming_orders SET retry_count = 6, failure_reason = 'requisite_not_found: none'
        WHERE id = ${failed}`
      const review = yield* createIncomingOrder({ storeId, status: "manual_review" })
      const assigned = yield* createIncomingOrder({ storeId, status: "assigned" })

      const list = yield* request("GET", "/api/admin/incoming-orders?status=failed&limit=10", { token })
      expect(list.status).toBe(200)
      expect(list.body.total).toBe(1)
      expect(list.body.items[0]).toMatchObject({
        id: failed,
        status: "failed",
        retryCount: 6,
        failureReason: "requisite_not_found: none",
        amount: "1500.00"
      })
      const all = yield* request("GET", "/api/admin/incoming-orders", { token })
      expect(all.body.total).toBe(3)

      const retried = yield* request("POST", `/api/admin/incoming-orders/${failed}/retry`, { token })
      expect(retried.status).toBe(200)
      expect(retried.body).toMatchObject({ id: failed, status: "retrying", retryCount: 0 })
      const [due] = yield* sql<{ due: boolean }>`SELECT next_attempt_at <= now() AS due FROM incoming_orders
        WHERE id = ${failed}`
      expect(due!.due).toBe(true)
      const audits = yield* sql`SELECT 1 FROM audit_logs WHERE action = 'admin.incoming_order_retry'
        AND target_id = ${String(failed)}`
      expect(audits).toHaveLength(1)

      expect((yield* request("POST", `/api/admin/incoming-orders/${review}/retry`, { token })).status).toBe(200)
      const again = yield* request("POST", `/api/admin/incoming-orders/${failed}/retry`, { token })
      expect(again.status).toBe(409)
      expect(again.body._tag).toBe("InvalidTransition")
      expect((yield* request("POST", `/api/admin/incoming-orders/${assigned}/retry`, { token })).status).toBe(409)
    }))

  it.effect("refuses bad input, unknown ids, anonymous callers and other roles", () =>
    Effect.gen(function*() {
      const token = yield* adminToken
      expect((yield* request("POST", "/api/admin/incoming-orders/999999/retry", { token })).status).toBe(404)
      expect((yield* request("POST", "/api/admin/incoming-orders/abc/retry", { token })).status).toBe(400)
      expect((yield* request("GET", "/api/admin/incoming-orders?status=lost", { token })).status).toBe(400)
      expect((yield* request("GET", "/api/admin/incoming-orders?limit=201", { token })).status).toBe(400)
      expect((yield* request("GET", "/api/admin/incoming-orders?offset=-1", { token })).status).toBe(400)
      expect((yield* request("GET", "/api/admin/incoming-orders")).status).toBe(401)
      const trader = yield* traderToken
      expect((yield* request("GET", "/api/admin/incoming-orders", { token: trader })).status).toBe(403)
      expect((yield* request("POST", "/api/admin/incoming-orders/1/retry", { token: trader })).status).toBe(403)
    }))
})
