import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { BigDecimal, Effect, Layer } from "effect"
import type { UserId } from "../../src/domain/Ids.js"
import type { UserPrincipal } from "../../src/domain/Principal.js"
import { atomic } from "../../src/services/Atomic.js"
import { BalanceManager } from "../../src/services/BalanceManager.js"
import { Reconciliation } from "../../src/services/Reconciliation.js"
import { createRequisite, createStore, createTrader, createUser, insertOrderHistory } from "../support/fixtures.js"
import { TestDatabaseLive } from "../support/TestDatabase.js"

const decimal = BigDecimal.unsafeFromString

const TestLayer = Layer.mergeAll(BalanceManager.Default, Reconciliation.Default).pipe(
  Layer.provideMerge(TestDatabaseLive({ maxConnections: 12 }))
)

/** Postings belong to completed orders (reconciliation checks completed ⇔ posted); the status manager does both at once. */
const markCompleted = (orderId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`UPDATE order_history SET status = 'completed' WHERE id = ${orderId}`)

const adminActor = Effect.map(createUser({ role: "admin" }), (userId): UserPrincipal => ({
  userId: userId as UserId,
  role: "admin",
  sessionId: 0,
  merchantId: null,
  traderId: null
}))

/** A funded store and trader (through the ledger, so reconciliation holds) and one order of each direction. */
const world = Effect.gen(function*() {
  const balances = yield* BalanceManager
  const actor = yield* adminActor
  const { storeId } = yield* createStore({ payinCommissionPct: "2.5000", payoutCommissionPct: "2.5000" })
  const { traderId } = yield* createTrader({ balance: "0" })
  const requisiteId = yield* createRequisite(traderId)
  yield* balances.deposit({ kind: "trader", id: traderId }, decimal("100"), actor, null)
  yield* balances.deposit({ kind: "store", id: storeId }, decimal("100"), actor, null)
  // 1500 RUB at 92.5: A = 16.216216, s (2.5%) = 0.405405, t (2%) = 0.324324.
  const amounts = {
    storeId, traderId, requisiteId,
    amountFiat: "1500.00", exchangeRate: "92.50000000", amountCrypto: "16.216216",
    storeCommissionPct: "2.5000", storeCommissionCrypto: "0.405405",
    traderRewardPct: "2.0000", traderRewardCrypto: "0.324324"
  }
  const payin = yield* insertOrderHistory({ ...amounts, direction: "payin" })
  const payout = yield* insertOrderHistory({ ...amounts, direction: "payout" })
  return { storeId, traderId, payin: payin.orderId, payout: payout.orderId, actor }
})

layer(TestLayer, { excludeTestServices: true })("BalanceManager", (it) => {
  it.effect("PayIn: hold A − t on the trader, post moves store +A−s, trader −(A−t), platform s−t", () =>
    Effect.gen(function*() {
      const balances = yield* BalanceManager
      const { storeId, traderId, payin } = yield* world
      yield* atomic("test.hold", balances.hold(payin))
      expect(yield* balances.getBalance({ kind: "trader", id: traderId })).toEqual({
        balance: "100.000000", frozen: "15.891892", available: "84.108108"
      })
      expect(yield* atomic("test.hold-again", balances.hold(payin))).toBe("already-held")
      yield* markCompleted(payin)
      expect(yield* balances.updateBalancesForCompletedOrder(payin)).toBe("posted")
      expect(yield* balances.getBalance({ kind: "trader", id: traderId })).toEqual({
        balance: "84.108108", frozen: "0.000000", available: "84.108108"
      })
      expect((yield* balances.getBalance({ kind: "store", id: storeId })).balance).toBe("115.810811")
      expect(yield* balances.updateBalancesForCompletedOrder(payin)).toBe("already-posted")
      const report = yield* (yield* Reconciliation).run()
      expect(report.differences).toEqual([])
      expect(report.ok).toBe(true)
    }))

  it.effect("PayOut: hold A + s on the store, post moves store −(A+s), trader +A+t; void releases instead", () =>
    Effect.gen(function*() {
      const balances = yield* BalanceManager
      const { storeId, traderId, payout, payin } = yield* world
      yield* atomic("test.hold", balances.hold(payout))
      expect((yield* balances.getBalance({ kind: "store", id: storeId })).frozen).toBe("16.621621")
      yield* markCompleted(payout)
      yield* balances.updateBalancesForCompletedOrder(payout)
      expect(yield* balances.getBalance({ kind: "store", id: storeId })).toEqual({
        balance: "83.378379", frozen: "0.000000", available: "83.378379"
      })
      expect((yield* balances.getBalance({ kind: "trader", id: traderId })).balance).toBe("116.540540")

      yield* atomic("test.hold", balances.hold(payin))
      expect(yield* atomic("test.void", balances.release(payin))).toBe("voided")
      expect(yield* atomic("test.void", balances.release(payin))).toBe("already-voided")
      expect((yield* balances.getBalance({ kind: "trader", id: traderId })).frozen).toBe("0.000000")
      const postAfterVoid = yield* balances.updateBalancesForCompletedOrder(payin).pipe(Effect.flip)
      expect(postAfterVoid._tag).toBe("InvalidTransition")
      expect((yield* (yield* Reconciliation).run()).ok).toBe(true)
    }))

  it.effect("a hold larger than the available balance is InsufficientBalance and leaves nothing behind", () =>
    Effect.gen(function*() {
      const balances = yield* BalanceManager
      const sql = yield* SqlClient.SqlClient
      const { storeId, traderId } = yield* createStore({ balance: "0" }).pipe(
        Effect.zip(createTrader({ balance: "0" })),
        Effect.map(([store, trader]) => ({ ...store, ...trader }))
      )
      const requisiteId = yield* createRequisite(traderId)
      const { orderId } = yield* insertOrderHistory({ storeId, traderId, requisiteId, direction: "payin" })
      const error = yield* atomic("test.hold", balances.hold(orderId)).pipe(Effect.flip)
      expect(error._tag).toBe("InsufficientBalance")
      const transfers = yield* sql`SELECT 1 FROM ledger_transfers WHERE order_id = ${orderId}`
      expect(transfers.length).toBe(0)
    }))

  it.effect("20 concurrent postings of one order post it exactly once", () =>
    Effect.gen(function*() {
      const balances = yield* BalanceManager
      const sql = yield* SqlClient.SqlClient
      const { payin, traderId } = yield* world
      yield* atomic("test.hold", balances.hold(payin))
      yield* markCompleted(payin)
      const outcomes = yield* Effect.all(
        Array.from({ length: 20 }, () => balances.updateBalancesForCompletedOrder(payin)),
        { concurrency: "unbounded" }
      )
      expect(outcomes.filter((outcome) => outcome === "posted").length).toBe(1)
      const posts = yield* sql<{ count: number }>`SELECT count(*)::int AS count FROM ledger_transfers WHERE order_id = ${payin} AND kind = 'post'`
      expect(posts[0]!.count).toBe(1)
      expect((yield* balances.getBalance({ kind: "trader", id: traderId })).balance).toBe("84.108108")
    }))

  it.effect("withdrawals cannot take held money; reconciliation reports a tampered balance", () =>
    Effect.gen(function*() {
      const balances = yield* BalanceManager
      const sql = yield* SqlClient.SqlClient
      const { traderId, payin, actor } = yield* world
      yield* atomic("test.hold", balances.hold(payin))
      const error = yield* balances.withdraw({ kind: "trader", id: traderId }, decimal("90"), actor, null).pipe(Effect.flip)
      expect(error._tag).toBe("InsufficientBalance")
      expect((yield* balances.withdraw({ kind: "trader", id: traderId }, decimal("84.108108"), actor, null)).available).toBe("0.000000")
      expect((yield* (yield* Reconciliation).run()).ok).toBe(true)
      yield* sql`UPDATE balance_traders SET balance = balance + 1 WHERE trader_id = ${traderId}`
      const report = yield* (yield* Reconciliation).run()
      expect(report.ok).toBe(false)
      expect(report.differences.map((difference) => difference.account)).toContain(`trader:${traderId}:balance`)
      expect(report.differences.map((difference) => difference.account)).toContain("ledger:total")
    }))
})
