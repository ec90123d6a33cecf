import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { BigDecimal, Effect, Layer } from "effect"
import type { UserId } from "../../src/domain/Ids.js"
import { AppConfig } from "../../src/layers/Config.js"
import { KeyValue } from "../../src/layers/KeyValue.js"
import { ObjectStore } from "../../src/layers/ObjectStore.js"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { atomic } from "../../src/services/Atomic.js"
import { BalanceManager } from "../../src/services/BalanceManager.js"
import { ErrorReporter } from "../../src/services/ErrorReporter.js"
import { OrderStatusManager } from "../../src/services/OrderStatusManager.js"
import { Reconciliation } from "../../src/services/Reconciliation.js"
import { expireDueOrders } from "../../src/workers/TimeoutWorker.js"
import { createRequisite, createStore, createTrader, createUser, insertOrderHistory } from "../support/fixtures.js"
import { TestDatabaseLive } from "../support/TestDatabase.js"

const TestLayer = Layer.mergeAll(OrderStatusManager.Default, BalanceManager.Default, Reconciliation.Default, ErrorReporter.Test).pipe(
  Layer.provideMerge(KeyValue.layerMemory),
  Layer.provideMerge(ObjectStore.layerLocal(mkdtempSync(join(tmpdir(), "jivapay-timeout-")))),
  Layer.provideMerge(AppConfig.layerWith({})),
  Layer.provideMerge(TestDatabaseLive())
)

const minutesFromNow = (minutes: number) => new Date(Date.now() + minutes * 60_000)

/** A held PayIn order of a funded trader, expiring at `expiresAt`, in `status`. */
const heldOrder = (expiresAt: Date, status: "assigned" | "pending_trader_confirmation") =>
  Effect.gen(function*() {
    const balances = yield* BalanceManager
    const adminId = yield* createUser({ role: "admin" })
    const actor = { userId: adminId as UserId, role: "admin" as const, sessionId: 0, merchantId: null, traderId: null }
    const { storeId } = yield* createStore()
    const { traderId } = yield* createTrader({ balance: "0" })
    yield* balances.deposit({ kind: "trader", id: traderId }, BigDecimal.unsafeFromString("50"), actor, null)
    const requisiteId = yield* createRequisite(traderId)
    const { orderId, incomingOrderId } = yield* insertOrderHistory({ storeId, traderId, requisiteId, status, expiresAt })
    yield* atomic("test.hold", balances.hold(orderId))
    return { orderId, incomingOrderId, traderId }
  })

const statusOf = (orderId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ status: string }>`SELECT status FROM order_history WHERE id = ${orderId}`.pipe(Effect.map((rows) => rows[0]!.status)))

layer(TestLayer, { excludeTestServices: true })("timeout worker", (it) => {
  it.effect("expired assigned → failed with the hold voided; expired pending → requires_attention with the hold kept", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const balances = yield* BalanceManager
      const assigned = yield* heldOrder(minutesFromNow(-1), "assigned")
      const pending = yield* heldOrder(minutesFromNow(-1), "pending_trader_confirmation")
      const fresh = yield* heldOrder(minutesFromNow(10), "assigned")

      const moved = yield* expireDueOrders
      expect(moved).toBe(2)
      expect(yield* statusOf(assigned.orderId)).toBe("failed")
      expect(yield* statusOf(pending.orderId)).toBe("requires_attention")
      expect(yield* statusOf(fresh.orderId)).toBe("assigned")
      expect(yield* balances.ledgerStateOf(assigned.orderId)).toBe("voided")
      expect(yield* balances.ledgerStateOf(pending.orderId)).toBe("held")
      expect((yield* balances.getBalance({ kind: "trader", id: assigned.traderId })).frozen).toBe("0.000000")

      const callbacks = yield* sql<{ incomingOrderId: number }>`SELECT incoming_order_id FROM merchant_callbacks`
      const notified = callbacks.map((row) => row.incomingOrderId)
      expect(notified).toContain(assigned.incomingOrderId)
      expect(notified).toContain(pending.incomingOrderId)

      // A second round finds nothing more to do; concurrent rounds move nothing twice.
      const again = yield* Effect.all([expireDueOrders, expireDueOrders], { concurrency: 2 })
      expect(again).toEqual([0, 0])
      expect((yield* (yield* Reconciliation).run()).ok).toBe(true)
    }))
})
