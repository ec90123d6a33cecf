import { SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { Duration, Effect, Logger, LogLevel } from "effect"
import type { UserId } from "../../src/domain/Ids.js"
import type { UserPrincipal } from "../../src/domain/Principal.js"
import { ReportedErrors } from "../../src/services/ErrorReporter.js"
import {
  orderRetryPolicy,
  OrderProcessor,
  type ProcessOutcome,
  retryDelayAfter
} from "../../src/services/OrderProcessor.js"
import {
  createIncomingOrder,
  createRequisite,
  createStore,
  createTrader,
  createUser,
  ensureFiatCurrency,
  type IncomingOrderOptions,
  insertOrderHistory,
  resetBusinessTables
} from "../support/fixtures.js"
import { insertOldRate, ProcessorTestLive, resetSwitches, setRate, setSwitch } from "../support/orderTesting.js"

const quiet = Logger.withMinimumLogLevel(LogLevel.Error)

const process = (incomingOrderId: number) =>
  Effect.flatMap(OrderProcessor, (processor) => processor.processIncomingOrder(incomingOrderId))

interface IncomingRow {
  readonly status: string
  readonly retryCount: number
  readonly lastAttemptAt: Date | null
  readonly nextAttemptAt: Date
  readonly failureReason: string | null
  readonly assignedOrderId: number | null
  readonly now: Date
}

const incomingRow = (id: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<IncomingRow>`SELECT status, retry_count, last_attempt_at, next_attempt_at, failure_reason, assigned_order_id,
        now() AS now FROM incoming_orders WHERE id = ${id}`.pipe(Effect.map((rows) => rows[0]!)))

/** Everything the main transaction writes, counted for one incoming order. */
const sideEffects = (incomingOrderId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ orders: number; holds: number; callbacks: string; audits: string; traderFrozen: string; storeFrozen: string }>`
      SELECT
        (SELECT count(*)::int FROM order_history WHERE incoming_order_id = ${incomingOrderId}) AS orders,
        (SELECT count(*)::int FROM ledger_transfers WHERE kind = 'hold') AS holds,
        (SELECT coalesce(string_agg(event, ',' ORDER BY id), '') FROM merchant_callbacks
          WHERE incoming_order_id = ${incomingOrderId}) AS callbacks,
        (SELECT coalesce(string_agg(action, ',' ORDER BY id), '') FROM audit_logs
          WHERE action LIKE 'order.%') AS audits,
        (SELECT coalesce(sum(frozen), 0)::text FROM balance_traders) AS trader_frozen,
        (SELECT coalesce(sum(frozen), 0)::text FROM balance_stores) AS store_frozen`.pipe(
      Effect.map((rows) => rows[0]!)
    ))

const nothingWritten = { orders: 0, holds: 0, callbacks: "", audits: "", traderFrozen: "0.000000", storeFrozen: "0.000000" }

/** A funded trader with one card/sber/RUB requisite, a store (callback URL set) and a RUB/USDT rate of 92.5. */
const world = (options: { readonly storeBalance?: string; readonly requisite?: boolean } = {}) =>
  Effect.gen(function*() {
    yield* resetBusinessTables
    yield* resetSwitches
    yield* Effect.flatMap(ReportedErrors, (reported) => reported.clear)
    yield* setRate("92.50000000")
    const { storeId } = yield* createStore({
      callbackUrl: "https://merchant.example/callbacks",
      balance: options.storeBalance ?? "0",
      processingTtlSeconds: 900
    })
    const { traderId } = yield* createTrader({ balance: "10000.000000" })
    const requisiteId = options.requisite === false ? null : yield* createRequisite(traderId)
    return { storeId, traderId, requisiteId }
  })

const order = (storeId: number, options: Partial<IncomingOrderOptions> = {}) =>
  createIncomingOrder({ storeId, amount: "1500.00", ...options })

const reports = Effect.flatMap(ReportedErrors, (reported) => reported.all)

const expectTag = <T extends ProcessOutcome["_tag"]>(outcome: ProcessOutcome, tag: T) => {
  expect(outcome._tag).toBe(tag)
  return outcome as Extract<ProcessOutcome, { _tag: T }>
}

/** Asserts the state of a transiently failed attempt: retrying, counted, backed off into the future, nothing kept. */
const expectRetrying = (incomingOrderId: number, code: string, attempts = 1) =>
  Effect.gen(function*() {
    const row = yield* incomingRow(incomingOrderId)
    expect(row.status).toBe("retrying")
    expect(row.retryCount).toBe(attempts)
    expect(row.lastAttemptAt).toBeInstanceOf(Date)
    expect(row.nextAttemptAt.getTime()).toBeGreaterThan(row.now.getTime())
    expect(row.failureReason).toMatch(new RegExp(`^${code}: `))
    expect(row.assignedOrderId).toBeNull()
    expect(yield* sideEffects(incomingOrderId)).toEqual(nothingWritten)
  })

layer(ProcessorTestLive(), { excludeTestServices: true })("OrderProcessor", (it) => {
  it.effect("assigns: order_history at the fixed rate, trader's hold, audit row and order.assigned callback", () =>
    Effect.gen(function*() {
      const { storeId, traderId, requisiteId } = yield* world()
      const id = yield* order(storeId)
      const outcome = expectTag(yield* process(id), "Assigned")
      expect(outcome.requisiteId).toBe(requisiteId)
      expect(outcome.traderId).toBe(traderId)

      const row = yield* incomingRow(id)
      expect(row.status).toBe("assigned")
      expect(row.assignedOrderId).toBe(outcome.orderId)
      expect(row.retryCount).toBe(0)

      const sql = yield* SqlClient.SqlClient
      const [history] = yield* sql<Record<string, unknown>>`SELECT status, exchange_rate, amount_fiat, amount_crypto,
          store_commission_pct, store_commission_crypto, trader_reward_pct, trader_reward_crypto,
          round(extract(epoch FROM expires_at - created_at))::int AS ttl_seconds
        FROM order_history WHERE id = ${outcome.orderId}`
      // A = round6(1500 / 92.5) = 16.216216; s = 3 % of A; t = 2 % of A (SPEC §5.5).
      expect(history).toEqual({
        status: "assigned",
        exchangeRate: "92.50000000",
        amountFiat: "1500.00",
        amountCrypto: "16.216216",
        storeCommissionPct: "3.0000",
        storeCommissionCrypto: "0.486486",
        traderRewardPct: "2.0000",
        traderRewardCrypto: "0.324324",
        ttlSeconds: 900
      })
      // PayIn holds the trader's deposit for A − t.
      const [balance] = yield* sql<{ balance: string; frozen: string }>`SELECT balance, frozen FROM balance_traders
        WHERE trader_id = ${traderId}`
      expect(balance).toEqual({ balance: "10000.000000", frozen: "15.891892" })

      const [audit] = yield* sql<{ action: string; targetId: string; userRole: string }>`SELECT action, target_id, user_role
        FROM audit_logs WHERE action = 'order.assigned'`
      expect(audit).toEqual({ action: "order.assigned", targetId: String(outcome.orderId), userRole: "system" })

      const callbacks = yield* sql<{ event: string; url: string; status: string; eventId: string; payload: any }>`
        SELECT event, url, status, event_id, payload FROM merchant_callbacks WHERE incoming_order_id = ${id}`
      expect(callbacks).toHaveLength(1)
      expect(callbacks[0]!.event).toBe("order.assigned")
      expect(callbacks[0]!.url).toBe("https://merchant.example/callbacks")
      expect(callbacks[0]!.status).toBe("pending")
      expect(callbacks[0]!.eventId).toMatch(/^[0-9a-f-]{36}$/)
      expect(callbacks[0]!.payload).toMatchObject({
        event: "order.assigned",
        id,
        direction: "payin",
        status: "assigned",
        amount: "1500.00",
        currency: "RUB",
        failureReason: null,
        order: { id: outcome.orderId, status: "assigned", exchangeRate: "92.50000000", amountCrypto: "16.216216" }
      })
      expect(yield* reports).toEqual([])
    }))

  it.effect("is idempotent: an assigned order processed again is a no-op", () =>
    Effect.gen(function*() {
      const { storeId } = yield* world()
      const id = yield* order(storeId)
      const first = expectTag(yield* process(id), "Assigned")
      const before = yield* sideEffects(id)
      const again = expectTag(yield* process(id), "AlreadyProcessed")
      expect(again.orderId).toBe(first.orderId)
      expect(yield* sideEffects(id)).toEqual(before)
    }))

  it.effect("skips orders that are not new or retrying", () =>
    Effect.gen(function*() {
      const { storeId } = yield* world()
      const id = yield* order(storeId, { status: "cancelled" })
      expectTag(yield* process(id), "Skipped")
      expect((yield* incomingRow(id)).status).toBe("cancelled")
      expectTag(yield* process(999_999), "Skipped")
    }))

  it.effect("no requisite → retrying with retry fields and a backoff in the future, nothing kept", () =>
    Effect.gen(function*() {
      const { storeId } = yield* world({ requisite: false })
      const id = yield* order(storeId)
      const outcome = expectTag(yield* process(id), "Retrying")
      expect(outcome.reason).toMatch(/^requisite_not_found: /)
      yield* expectRetrying(id, "requisite_not_found")
      const row = yield* incomingRow(id)
      // First retry: base delay 2 s, jittered into [1 s, 2 s].
      const delayMs = row.nextAttemptAt.getTime() - row.lastAttemptAt!.getTime()
      expect(delayMs).toBeGreaterThanOrEqual(900)
      expect(delayMs).toBeLessThanOrEqual(2100)
      // A retry is routine: it does not count towards the failed-order alert.
      expect(yield* reports).toEqual([])
    }).pipe(quiet))

  it.effect("limit exceeded → retrying", () =>
    Effect.gen(function*() {
      const { storeId, traderId } = yield* world({ requisite: false })
      const limited = yield* createRequisite(traderId, { settings: { maxOpenOrders: 1 } })
      yield* insertOrderHistory({ storeId, traderId, requisiteId: limited })
      const id = yield* order(storeId)
      const before = yield* sideEffects(id)
      expectTag(yield* process(id), "Retrying")
      const row = yield* incomingRow(id)
      expect(row.status).toBe("retrying")
      expect(row.failureReason).toMatch(/^limit_exceeded: .*max_open_orders/)
      expect(yield* sideEffects(id)).toEqual(before)
    }).pipe(quiet))

  it.effect("fraud DENY → failed at once, with an order.failed callback and nothing else", () =>
    Effect.gen(function*() {
      const { storeId } = yield* world()
      yield* setSwitch("fraudMode", "deny")
      const id = yield* order(storeId)
      const outcome = expectTag(yield* process(id), "Failed")
      expect(outcome.reason).toMatch(/^fraud_denied: blacklist:customer_id/)
      const row = yield* incomingRow(id)
      expect(row.status).toBe("failed")
      expect(row.retryCount).toBe(1)
      expect(row.failureReason).toMatch(/^fraud_denied: /)
      expect(yield* sideEffects(id)).toEqual({ ...nothingWritten, callbacks: "order.failed", audits: "order.failed" })
      const sql = yield* SqlClient.SqlClient
      const [callback] = yield* sql<{ payload: any }>`SELECT payload FROM merchant_callbacks WHERE incoming_order_id = ${id}`
      expect(callback!.payload).toMatchObject({ event: "order.failed", status: "failed", order: null })
      expect(callback!.payload.failureReason).toMatch(/^fraud_denied/)
    }).pipe(quiet))

  it.effect("fraud REVIEW → manual_review with its callback", () =>
    Effect.gen(function*() {
      const { storeId } = yield* world()
      yield* setSwitch("fraudMode", "review")
      const id = yield* order(storeId)
      const outcome = expectTag(yield* process(id), "ManualReview")
      expect(outcome.reason).toMatch(/^fraud_review: ip_orders_per_minute/)
      expect((yield* incomingRow(id)).status).toBe("manual_review")
      expect(yield* sideEffects(id)).toEqual({
        ...nothingWritten,
        callbacks: "order.manual_review",
        audits: "order.manual_review"
      })
    }).pipe(quiet))

  it.effect("stale or missing rate → retrying (rate_unavailable)", () =>
    Effect.gen(function*() {
      yield* world()
      yield* ensureFiatCurrency("KZT")
      yield* ensureFiatCurrency("UZS")
      // 2 hours old, RATE_MAX_AGE is 30 minutes.
      yield* insertOldRate("480.00000000", "UZS", 2 * 3600)
      const kztStore = yield* createStore({ fiatCurrency: "KZT" })
      const uzsStore = yield* createStore({ fiatCurrency: "UZS" })
      const missing = yield* order(kztStore.storeId, { currency: "KZT" })
      const stale = yield* order(uzsStore.storeId, { currency: "UZS" })
      expectTag(yield* process(missing), "Retrying")
      expectTag(yield* process(stale), "Retrying")
      yield* expectRetrying(missing, "rate_unavailable")
      yield* expectRetrying(stale, "rate_unavailable")
      expect((yield* incomingRow(stale)).failureReason).toMatch(/older than RATE_MAX_AGE/)
    }).pipe(quiet))

  it.effect("an exception in a dependency → retrying, reported as critical", () =>
    Effect.gen(function*() {
      const { storeId } = yield* world()
      yield* setSwitch("fraudMode", "die")
      const id = yield* order(storeId)
      const outcome = expectTag(yield* process(id), "Retrying")
      expect(outcome.reason).toMatch(/^unexpected: .*fraud detector exploded/)
      yield* expectRetrying(id, "unexpected")
      const reported = yield* reports
      // A retry is not a final failure: only the critical error is reported, not an order failure.
      expect(reported.map((report) => report.kind)).toEqual(["critical_error"])
      expect(reported[0]!.message).toMatch(/fraud detector exploded/)
      expect(reported[0]!.context).toMatchObject({ incomingOrderId: id })
    }).pipe(quiet))

  it.effect("a failure after the hold rolls back order_history, the hold, the requisite mark and the audit row", () =>
    Effect.gen(function*() {
      const { storeId, requisiteId } = yield* world()
      yield* setSwitch("outboxDiesOn", "order.assigned")
      const id = yield* order(storeId)
      expectTag(yield* process(id), "Retrying")
      yield* expectRetrying(id, "unexpected")
      const sql = yield* SqlClient.SqlClient
      const [requisite] = yield* sql<{ lastAssignedAt: Date | null }>`SELECT last_assigned_at FROM requisites
        WHERE id = ${requisiteId}`
      expect(requisite!.lastAssignedAt).toBeNull()
      const [ledger] = yield* sql<{ transfers: number; history: number }>`SELECT
          (SELECT count(*)::int FROM ledger_transfers) AS transfers,
          (SELECT count(*)::int FROM balance_trader_crypto_history) AS history`
      expect(ledger).toEqual({ transfers: 0, history: 0 })

      // The same order succeeds on the next attempt and ends with exactly one of everything.
      yield* setSwitch("outboxDiesOn", null)
      expectTag(yield* process(id), "Assigned")
      const after = yield* sideEffects(id)
      expect(after).toMatchObject({ orders: 1, holds: 1, callbacks: "order.assigned", audits: "order.assigned" })
      expect((yield* incomingRow(id)).retryCount).toBe(1)
    }).pipe(quiet))

  it.effect("gives up after ORDER_MAX_RETRIES retries: failed, with order.failed", () =>
    Effect.gen(function*() {
      const { storeId } = yield* world({ requisite: false })
      const id = yield* order(storeId)
      // ORDER_MAX_RETRIES = 3 in these tests: the first attempt plus three retries.
      for (const attempt of [1, 2, 3]) {
        expectTag(yield* process(id), "Retrying")
        expect((yield* incomingRow(id)).retryCount).toBe(attempt)
      }
      const outcome = expectTag(yield* process(id), "Failed")
      expect(outcome.reason).toMatch(/^requisite_not_found: .*gave up after 4 attempts/)
      const row = yield* incomingRow(id)
      expect(row.status).toBe("failed")
      expect(row.retryCount).toBe(4)
      expect(yield* sideEffects(id)).toMatchObject({ orders: 0, holds: 0, callbacks: "order.failed", audits: "order.failed" })
      // A failed order is a dead letter: the workers no longer pick it.
      expectTag(yield* process(id), "Skipped")
    }).pipe(quiet))

  it.effect("PayOut without enough store balance → retrying; after a top-up → assigned with the store's hold", () =>
    Effect.gen(function*() {
      const { storeId } = yield* world({ storeBalance: "10.000000" })
      const id = yield* order(storeId, { direction: "payout" })
      const outcome = expectTag(yield* process(id), "Retrying")
      expect(outcome.reason).toMatch(/^insufficient_balance: store/)
      yield* expectRetrying(id, "insufficient_balance")

      const sql = yield* SqlClient.SqlClient
      yield* sql`UPDATE balance_stores SET balance = 100 WHERE store_id = ${storeId}`
      expectTag(yield* process(id), "Assigned")
      // PayOut holds the store's balance for A + s = 16.216216 + 2 % of A (0.324324).
      const [store] = yield* sql<{ frozen: string }>`SELECT frozen FROM balance_stores WHERE store_id = ${storeId}`
      expect(store!.frozen).toBe("16.540540")
      expect((yield* sideEffects(id)).traderFrozen).toBe("0.000000")
    }).pipe(quiet))

  it.effect("an amount worth 0 USDT is a permanent validation failure", () =>
    Effect.gen(function*() {
      const { storeId } = yield* world()
      yield* setRate("99999999.00000000")
      const id = yield* order(storeId, { amount: "0.01" })
      const outcome = expectTag(yield* process(id), "Failed")
      expect(outcome.reason).toMatch(/^invalid_order: /)
    }).pipe(quiet))

  describe("dead letters", () => {
    it.effect("lists by status and sends a failed order back to the queue, audited", () =>
      Effect.gen(function*() {
        const { storeId } = yield* world()
        yield* setSwitch("fraudMode", "deny")
        const failedId = yield* order(storeId)
        expectTag(yield* process(failedId), "Failed")
        const assignedId = yield* order(storeId)
        yield* setSwitch("fraudMode", "allow")
        expectTag(yield* process(assignedId), "Assigned")

        const processor = yield* OrderProcessor
        const failed = yield* processor.listIncomingOrders({ status: "failed", limit: 500 })
        expect(failed.total).toBe(1)
        expect(failed.items.map((item) => item.id)).toEqual([failedId])
        expect(failed.items[0]).toMatchObject({ status: "failed", retryCount: 1, amount: "1500.00" })
        expect((yield* processor.listIncomingOrders({})).total).toBe(2)

        const adminUserId = yield* createUser({ role: "admin" })
        const admin: UserPrincipal = {
          userId: adminUserId as UserId,
          role: "admin",
          sessionId: 1,
          merchantId: null,
          traderId: null
        }
        const notRetryable = yield* Effect.flip(processor.retryIncomingOrder(assignedId, admin))
        expect(notRetryable._tag).toBe("InvalidTransition")
        expect((yield* Effect.flip(processor.retryIncomingOrder(999_999, admin)))._tag).toBe("NotFound")

        const retried = yield* processor.retryIncomingOrder(failedId, admin)
        expect(retried).toMatchObject({ id: failedId, status: "retrying", retryCount: 0 })
        const sql = yield* SqlClient.SqlClient
        const [audit] = yield* sql<{ userId: number; details: any }>`SELECT user_id, details FROM audit_logs
          WHERE action = 'admin.incoming_order_retry'`
        expect(audit).toMatchObject({ userId: adminUserId, details: { previousStatus: "failed" } })
        expectTag(yield* process(failedId), "Assigned")
      }).pipe(quiet))
  })
})

describe("order retry policy", () => {
  it("is exponential, capped at the maximum and jittered down to half, never above", async () => {
    const policy = orderRetryPolicy(Duration.seconds(1), Duration.seconds(30))
    for (let attempt = 1; attempt <= 10; attempt++) {
      const delayMs = Duration.toMillis(await Effect.runPromise(retryDelayAfter(policy, attempt)))
      const ceilingMs = Math.min(1000 * 2 ** (attempt - 1), 30_000)
      expect(delayMs).toBeGreaterThanOrEqual(ceilingMs / 2)
      expect(delayMs).toBeLessThanOrEqual(ceilingMs)
    }
  })
})
