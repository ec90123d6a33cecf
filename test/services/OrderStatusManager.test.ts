import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { BigDecimal, Effect, Exit, Layer, Logger, LogLevel } from "effect"
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { StoreId, UserId } from "../../src/domain/Ids.js"
import type { StorePrincipal, UserPrincipal } from "../../src/domain/Principal.js"
import type { Direction } from "../../src/domain/Status.js"
import { AppConfig } from "../../src/layers/Config.js"
import { KeyValue } from "../../src/layers/KeyValue.js"
import { ObjectStore } from "../../src/layers/ObjectStore.js"
import { atomic } from "../../src/services/Atomic.js"
import { BalanceManager } from "../../src/services/BalanceManager.js"
import { FraudDetector } from "../../src/services/FraudDetector.js"
import { LifecycleActor, OrderStatusManager, type Receipt } from "../../src/services/OrderStatusManager.js"
import { Reconciliation } from "../../src/services/Reconciliation.js"
import { createIncomingOrder, createRequisite, createStore, createTrader, createUser, insertOrderHistory } from "../support/fixtures.js"
import { TestDatabaseLive } from "../support/TestDatabase.js"

const objectDir = mkdtempSync(join(tmpdir(), "jivapay-osm-"))
const maxReceiptBytes = 4096

const TestLayer = Layer.mergeAll(OrderStatusManager.Default, BalanceManager.Default, FraudDetector.Default, Reconciliation.Default).pipe(
  Layer.provideMerge(Layer.mergeAll(
    ObjectStore.layerLocal(objectDir),
    KeyValue.layerMemory,
    AppConfig.layerWith({ maxReceiptBytes })
  )),
  Layer.provideMerge(TestDatabaseLive({ maxConnections: 12 }))
)

const quiet = Logger.withMinimumLogLevel(LogLevel.Error)
const decimal = BigDecimal.unsafeFromString

// ---- receipts ------------------------------------------------------------------------------

const png = (size = 64): Receipt => {
  const bytes = new Uint8Array(size)
  bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
  return { bytes, declaredType: "image/png", fileName: "receipt.png" }
}
const pdf = (): Receipt => ({ bytes: new TextEncoder().encode("%PDF-1.7\n% receipt\n"), declaredType: "application/pdf" })
const textAsPng = (): Receipt => ({ bytes: new TextEncoder().encode("I promise I paid"), declaredType: "image/png", fileName: "r.png" })

/** The receipts stored for an order (the local store keeps one data file and one sidecar per object). */
const storedReceipts = (orderId: number) => {
  const dir = join(objectDir, "receipts", String(orderId))
  return existsSync(dir) ? readdirSync(dir).filter((name) => !name.endsWith(".meta.json") && !name.startsWith(".")) : []
}

// ---- actors ----------------------------------------------------------------------------------

const userPrincipal = (userId: number, role: UserPrincipal["role"], traderId: number | null = null): UserPrincipal => ({
  userId: userId as UserId,
  role,
  sessionId: 0,
  merchantId: null,
  traderId
})

const staff = (role: "admin" | "support") => Effect.map(createUser({ role }), (userId) => userPrincipal(userId, role))

// ---- the world -----------------------------------------------------------------------------

/**
 * A store and a trader funded through the ledger (so reconciliation holds), and an order of the
 * given direction with its hold placed, as the OrderProcessor leaves it.
 * 1500 RUB at 92.5: A = 16.216216, s (3%) = 0.486486, t (2%) = 0.324324.
 */
const world = (direction: Direction, options: { readonly customerId?: string } = {}) =>
  Effect.gen(function*() {
    const balances = yield* BalanceManager
    const admin = yield* staff("admin")
    const { merchantId, storeId } = yield* createStore()
    const traderUserId = yield* createUser({ role: "trader" })
    const { traderId } = yield* createTrader({ userId: traderUserId, balance: "0" })
    const requisiteId = yield* createRequisite(traderId)
    yield* balances.deposit({ kind: "trader", id: traderId }, decimal("100"), admin, null)
    yield* balances.deposit({ kind: "store", id: storeId }, decimal("100"), admin, null)
    const incomingOrderId = yield* createIncomingOrder({
      storeId,
      direction,
      status: "assigned",
      customerId: options.customerId ?? null
    })
    const { orderId } = yield* insertOrderHistory({ storeId, traderId, requisiteId, direction, incomingOrderId })
    yield* atomic("test.hold", balances.hold(orderId))
    const store: StorePrincipal = { storeId: storeId as StoreId, merchantId, publicId: `pub-${storeId}` }
    const trader = { user: userPrincipal(traderUserId, "trader", traderId), traderId }
    return { admin, store, storeId, trader, traderId, requisiteId, orderId, incomingOrderId }
  })

/** Everything a move writes about one order, to prove a refused move wrote nothing. */
const footprint = (orderId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{
      status: string
      statusReason: string | null
      clientProofKey: string | null
      traderProofKey: string | null
      completedAt: Date | null
      incomingStatus: string
      transfers: string
      audits: string
      callbacks: string
      fraudChecks: number
    }>`SELECT o.status, o.status_reason, o.client_proof_key, o.trader_proof_key, o.completed_at, i.status AS incoming_status,
        (SELECT coalesce(string_agg(kind, ',' ORDER BY id), '') FROM ledger_transfers WHERE order_id = o.id) AS transfers,
        (SELECT coalesce(string_agg(action, ',' ORDER BY id), '') FROM audit_logs
          WHERE target_entity = 'order' AND target_id = o.id::text) AS audits,
        (SELECT coalesce(string_agg(event, ',' ORDER BY id), '') FROM merchant_callbacks WHERE incoming_order_id = i.id) AS callbacks,
        (SELECT count(*)::int FROM fraud_checks WHERE incoming_order_id = i.id) AS fraud_checks
      FROM order_history o JOIN incoming_orders i ON i.id = o.incoming_order_id WHERE o.id = ${orderId}`.pipe(
      Effect.orDie,
      Effect.map((rows) => ({ ...rows[0]!, receipts: storedReceipts(orderId) }))
    ))

const balancesOf = (w: { storeId: number; traderId: number }) =>
  Effect.gen(function*() {
    const balances = yield* BalanceManager
    const sql = yield* SqlClient.SqlClient
    const [platform] = yield* sql<{ balance: string }>`SELECT balance FROM balance_platform WHERE id = 1`.pipe(Effect.orDie)
    return {
      store: yield* balances.getBalance({ kind: "store", id: w.storeId }),
      trader: yield* balances.getBalance({ kind: "trader", id: w.traderId }),
      platform: platform!.balance
    }
  })

const historyOf = (orderId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.all({
      store: sql<{ delta: string; frozenDelta: string; reason: string }>`SELECT delta, frozen_delta, reason
        FROM balance_store_history WHERE order_id = ${orderId} ORDER BY id`,
      trader: sql<{ delta: string; frozenDelta: string; reason: string }>`SELECT delta, frozen_delta, reason
        FROM balance_trader_crypto_history WHERE order_id = ${orderId} ORDER BY id`,
      platform: sql<{ delta: string }>`SELECT delta FROM balance_platform_history WHERE order_id = ${orderId} ORDER BY id`,
      fiat: sql<{ delta: string; currency: string }>`SELECT delta, currency FROM balance_trader_fiat_history WHERE order_id = ${orderId}`
    }).pipe(Effect.orDie))

const expectReconciled = Effect.gen(function*() {
  const report = yield* (yield* Reconciliation).run()
  expect(report.differences).toEqual([])
  expect(report.ok).toBe(true)
})

const failureTag = <A, E extends { readonly _tag: string }>(exit: Exit.Exit<A, E>) =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error._tag : Exit.isSuccess(exit) ? "Success" : "Defect"

const manager = OrderStatusManager

layer(TestLayer, { excludeTestServices: true })("OrderStatusManager", (it) => {
  it.effect("PayIn: client confirmation with a receipt, then the trader's: completed and posted exactly as SPEC §5.5", () =>
    Effect.gen(function*() {
      const lifecycle = yield* manager
      const w = yield* world("payin")
      const platformBefore = (yield* balancesOf(w)).platform
      expect((yield* balancesOf(w)).trader).toEqual({ balance: "100.000000", frozen: "15.891892", available: "84.108108" })

      const pending = yield* lifecycle.confirmByClient(w.store, w.incomingOrderId, png())
      expect(pending.to).toBe("pending_trader_confirmation")
      expect(pending.order).toMatchObject({ id: w.orderId, incomingOrderId: w.incomingOrderId, status: "pending_trader_confirmation" })
      const afterClient = yield* footprint(w.orderId)
      expect(afterClient.clientProofKey).toMatch(new RegExp(`^receipts/${w.orderId}/client-[0-9a-f]{24}\\.png$`))
      expect(afterClient.receipts).toHaveLength(1)
      expect(readFileSync(join(objectDir, afterClient.clientProofKey!)).subarray(0, 4)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47]))
      expect(afterClient.transfers).toBe("hold")
      expect(afterClient.callbacks).toBe("order.pending_trader_confirmation")
      expect(afterClient.audits).toBe("order.pending_trader_confirmation")
      expect(afterClient.fraudChecks).toBe(1)

      const completed = yield* lifecycle.confirmByTrader(w.trader, w.orderId, undefined)
      expect(completed.to).toBe("completed")
      expect(completed.order).toEqual({
        id: w.orderId,
        incomingOrderId: w.incomingOrderId,
        status: "completed",
        direction: "payin",
        amountFiat: "1500.00",
        amountCrypto: "16.216216",
        exchangeRate: "92.50000000",
        requisiteId: w.requisiteId,
        payoutDestination: null,
        expiresAt: expect.any(String)
      })
      const after = yield* footprint(w.orderId)
      expect(after).toMatchObject({
        status: "completed",
        incomingStatus: "assigned",
        transfers: "hold,post",
        audits: "order.pending_trader_confirmation,order.completed",
        callbacks: "order.pending_trader_confirmation,order.completed",
        traderProofKey: null,
        fraudChecks: 2
      })
      expect(after.completedAt).toBeInstanceOf(Date)
      // PayIn: store += A − s, trader −= A − t, platform += s − t; the hold is consumed.
      const balances = yield* balancesOf(w)
      expect(balances.store).toEqual({ balance: "115.729730", frozen: "0.000000", available: "115.729730" })
      expect(balances.trader).toEqual({ balance: "84.108108", frozen: "0.000000", available: "84.108108" })
      expect(BigDecimal.format(BigDecimal.subtract(decimal(balances.platform), decimal(platformBefore)))).toBe("0.162162")
      const history = yield* historyOf(w.orderId)
      expect(history.store).toEqual([{ delta: "15.729730", frozenDelta: "0.000000", reason: "post" }])
      expect(history.trader).toEqual([
        { delta: "0.000000", frozenDelta: "15.891892", reason: "hold" },
        { delta: "-15.891892", frozenDelta: "-15.891892", reason: "post" }
      ])
      expect(history.platform).toEqual([{ delta: "0.162162" }])
      expect(history.fiat).toEqual([{ delta: "1500.00", currency: "RUB" }])
      yield* expectReconciled
    }))

  it.effect("PayOut: the trader's receipt is required; with it, completed and posted exactly as SPEC §5.5", () =>
    Effect.gen(function*() {
      const lifecycle = yield* manager
      const w = yield* world("payout")
      const platformBefore = (yield* balancesOf(w)).platform
      expect((yield* balancesOf(w)).store).toEqual({ balance: "100.000000", frozen: "16.702702", available: "83.297298" })
      const before = yield* footprint(w.orderId)

      const missing = yield* Effect.exit(lifecycle.confirmByTrader(w.trader, w.orderId, undefined))
      expect(failureTag(missing)).toBe("ValidationError")
      expect(yield* footprint(w.orderId)).toEqual(before)
      // A PayOut has no customer payment to confirm.
      expect(failureTag(yield* Effect.exit(lifecycle.confirmByClient(w.store, w.incomingOrderId, png())))).toBe("InvalidTransition")
      expect(yield* footprint(w.orderId)).toEqual(before)

      const completed = yield* lifecycle.confirmByTrader(w.trader, w.orderId, pdf())
      expect(completed.order.status).toBe("completed")
      expect(completed.order.payoutDestination).toEqual({ details: "2202000000000000", holderName: "PETR PETROV", bankCode: "sber" })
      const after = yield* footprint(w.orderId)
      expect(after.traderProofKey).toMatch(new RegExp(`^receipts/${w.orderId}/trader-[0-9a-f]{24}\\.pdf$`))
      expect(after.transfers).toBe("hold,post")
      // PayOut: store −= A + s, trader += A + t, platform += s − t.
      const balances = yield* balancesOf(w)
      expect(balances.store).toEqual({ balance: "83.297298", frozen: "0.000000", available: "83.297298" })
      expect(balances.trader).toEqual({ balance: "116.540540", frozen: "0.000000", available: "116.540540" })
      expect(BigDecimal.format(BigDecimal.subtract(decimal(balances.platform), decimal(platformBefore)))).toBe("0.162162")
      const history = yield* historyOf(w.orderId)
      expect(history.store).toEqual([
        { delta: "0.000000", frozenDelta: "16.702702", reason: "hold" },
        { delta: "-16.702702", frozenDelta: "-16.702702", reason: "post" }
      ])
      expect(history.trader).toEqual([{ delta: "16.540540", frozenDelta: "0.000000", reason: "post" }])
      expect(history.fiat).toEqual([{ delta: "-1500.00", currency: "RUB" }])

      const again = yield* Effect.exit(lifecycle.confirmByTrader(w.trader, w.orderId, pdf()))
      expect(failureTag(again)).toBe("InvalidTransition")
      expect(yield* footprint(w.orderId)).toEqual(after)
      yield* expectReconciled
    }))

  it.effect("cancel voids the hold, marks the incoming order cancelled, and is final", () =>
    Effect.gen(function*() {
      const lifecycle = yield* manager
      const w = yield* world("payin")
      const cancelled = yield* lifecycle.cancel(LifecycleActor.Trader(w.trader), w.orderId, "customer never paid")
      expect(cancelled.order.status).toBe("cancelled")
      const after = yield* footprint(w.orderId)
      expect(after).toMatchObject({
        status: "cancelled",
        statusReason: "customer never paid",
        incomingStatus: "cancelled",
        transfers: "hold,void",
        audits: "order.cancelled",
        callbacks: "order.cancelled"
      })
      expect(yield* balancesOf(w)).toMatchObject({ trader: { balance: "100.000000", frozen: "0.000000", available: "100.000000" } })
      // A merchant cancel names the incoming order; the store acts only on its own orders.
      const other = yield* world("payout")
      const byMerchant = yield* lifecycle.cancel(LifecycleActor.Store({ store: other.store, role: "merchant" }), other.incomingOrderId, "customer left")
      expect(byMerchant.order.status).toBe("cancelled")
      expect((yield* balancesOf(other)).store.frozen).toBe("0.000000")
      // Terminal: nobody moves it again, admins included.
      const attempts: ReadonlyArray<Effect.Effect<unknown, { readonly _tag: string }>> = [
        lifecycle.cancel(LifecycleActor.Trader(w.trader), w.orderId, "again"),
        lifecycle.dispute(LifecycleActor.Trader(w.trader), w.orderId, "again"),
        lifecycle.confirmByTrader(w.trader, w.orderId, png()),
        lifecycle.adminTransition(w.admin, w.orderId, "completed", "resurrect"),
        lifecycle.adminTransition(w.admin, w.orderId, "dispute", "resurrect")
      ]
      for (const attempt of attempts) {
        expect(failureTag(yield* Effect.exit(attempt))).toBe("InvalidTransition")
      }
      expect(yield* footprint(w.orderId)).toEqual(after)
      // A blank reason is refused before anything happens.
      const fresh = yield* world("payin")
      expect(failureTag(yield* Effect.exit(lifecycle.cancel(LifecycleActor.Trader(fresh.trader), fresh.orderId, "   ")))).toBe("ValidationError")
      expect(failureTag(yield* Effect.exit(lifecycle.cancel(LifecycleActor.Trader(fresh.trader), fresh.orderId, "x".repeat(501))))).toBe("ValidationError")
      expect((yield* footprint(fresh.orderId)).status).toBe("assigned")
      yield* expectReconciled
    }))

  it.effect("dispute keeps the hold; admin resolves to completed (posted), support to cancelled (voided); others may not", () =>
    Effect.gen(function*() {
      const lifecycle = yield* manager
      const support = yield* staff("support")
      const a = yield* world("payin")
      const b = yield* world("payout")
      for (const w of [a, b]) {
        const disputed = yield* lifecycle.dispute(LifecycleActor.Trader(w.trader), w.orderId, "amount differs")
        expect(disputed.order.status).toBe("dispute")
        expect((yield* footprint(w.orderId)).transfers).toBe("hold")
        // The trader cannot resolve their own dispute, neither by confirming nor through the admin route.
        expect(failureTag(yield* Effect.exit(lifecycle.confirmByTrader(w.trader, w.orderId, png())))).toBe("InvalidTransition")
        expect(failureTag(yield* Effect.exit(lifecycle.adminTransition(w.trader.user, w.orderId, "completed", "mine")))).toBe("Forbidden")
      }
      expect((yield* balancesOf(a)).trader.frozen).toBe("15.891892")

      const resolved = yield* lifecycle.adminTransition(a.admin, a.orderId, "completed", "bank statement checked")
      expect(resolved.order.status).toBe("completed")
      expect(yield* footprint(a.orderId)).toMatchObject({ transfers: "hold,post", statusReason: "bank statement checked" })
      expect((yield* balancesOf(a)).trader).toEqual({ balance: "84.108108", frozen: "0.000000", available: "84.108108" })

      const refunded = yield* lifecycle.adminTransition(support, b.orderId, "cancelled", "payout never arrived")
      expect(refunded.order.status).toBe("cancelled")
      expect(yield* footprint(b.orderId)).toMatchObject({ transfers: "hold,void", incomingStatus: "cancelled" })
      expect((yield* balancesOf(b)).store).toEqual({ balance: "100.000000", frozen: "0.000000", available: "100.000000" })

      const audits = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ action: string; userId: number; userRole: string; details: { reason: string; from: string; ledger: string } }>`
          SELECT action, user_id, user_role, details FROM audit_logs
          WHERE target_entity = 'order' AND target_id IN (${String(a.orderId)}, ${String(b.orderId)}) AND user_role IN ('admin', 'support')
          ORDER BY id`.pipe(Effect.orDie))
      expect(audits.map((row) => ({ action: row.action, userId: row.userId, userRole: row.userRole, ...row.details })))
        .toEqual([
          expect.objectContaining({ action: "order.completed", userId: a.admin.userId, userRole: "admin", reason: "bank statement checked", from: "dispute", ledger: "post" }),
          expect.objectContaining({ action: "order.cancelled", userId: support.userId, userRole: "support", reason: "payout never arrived", from: "dispute", ledger: "void" })
        ])
      // Admins cannot complete an open order themselves: that is the trader's confirmation.
      const open = yield* world("payin")
      expect(failureTag(yield* Effect.exit(lifecycle.adminTransition(open.admin, open.orderId, "completed", "trust me")))).toBe("InvalidTransition")
      expect(failureTag(yield* Effect.exit(lifecycle.adminTransition(open.admin, open.orderId, "failed", "no")))).toBe("InvalidTransition")
      expect((yield* footprint(open.orderId)).transfers).toBe("hold")
      yield* expectReconciled
    }))

  it.effect("foreign traders and stores get OrderNotFound, and nothing is written or stored", () =>
    Effect.gen(function*() {
      const lifecycle = yield* manager
      const mine = yield* world("payin")
      const theirs = yield* world("payin")
      const before = yield* footprint(mine.orderId)
      const attempts: ReadonlyArray<Effect.Effect<unknown, { readonly _tag: string }>> = [
        lifecycle.confirmByTrader(theirs.trader, mine.orderId, png()),
        lifecycle.confirmByTrader(theirs.trader, mine.orderId, undefined),
        lifecycle.cancel(LifecycleActor.Trader(theirs.trader), mine.orderId, "not mine"),
        lifecycle.dispute(LifecycleActor.Trader(theirs.trader), mine.orderId, "not mine"),
        lifecycle.confirmByClient(theirs.store, mine.incomingOrderId, png()),
        lifecycle.cancel(LifecycleActor.Store({ store: theirs.store, role: "merchant" }), mine.incomingOrderId, "not mine"),
        // Unknown ids look the same as foreign ones.
        lifecycle.confirmByTrader(mine.trader, 987654321, png()),
        lifecycle.adminTransition(mine.admin, 987654321, "cancelled", "nothing")
      ]
      for (const attempt of attempts) expect(failureTag(yield* Effect.exit(attempt))).toBe("OrderNotFound")
      expect(yield* footprint(mine.orderId)).toEqual(before)
      expect(before.receipts).toEqual([])
      // The store's own order that was never assigned is a conflict, not a 404.
      const unassigned = yield* createIncomingOrder({ storeId: mine.storeId })
      expect(failureTag(yield* Effect.exit(lifecycle.confirmByClient(mine.store, unassigned, png())))).toBe("InvalidTransition")
    }))

  it.effect("bad receipts are refused before anything is stored or written", () =>
    Effect.gen(function*() {
      const lifecycle = yield* manager
      const w = yield* world("payout")
      const before = yield* footprint(w.orderId)
      const cases: ReadonlyArray<readonly [string, Receipt]> = [
        ["ValidationError", { bytes: new Uint8Array(0), declaredType: "image/png" }],
        ["UnsupportedReceiptType", textAsPng()],
        ["UnsupportedReceiptType", { ...pdf(), declaredType: "image/png" }],
        ["UnsupportedReceiptType", { ...png(), declaredType: "text/html" }],
        ["UnsupportedReceiptType", { bytes: new TextEncoder().encode("GIF89a......"), declaredType: "image/gif" }],
        ["PayloadTooLarge", png(maxReceiptBytes + 1)]
      ]
      for (const [tag, receipt] of cases) {
        expect(failureTag(yield* Effect.exit(lifecycle.confirmByTrader(w.trader, w.orderId, receipt))), tag).toBe(tag)
      }
      const payin = yield* world("payin")
      const payinBefore = yield* footprint(payin.orderId)
      expect(failureTag(yield* Effect.exit(lifecycle.confirmByClient(payin.store, payin.incomingOrderId, textAsPng())))).toBe("UnsupportedReceiptType")
      expect(failureTag(yield* Effect.exit(lifecycle.confirmByClient(payin.store, payin.incomingOrderId, undefined)))).toBe("ValidationError")
      expect(yield* footprint(w.orderId)).toEqual(before)
      expect(yield* footprint(payin.orderId)).toEqual(payinBefore)
      expect(before.receipts).toEqual([])
      // A JPEG declared as octet-stream is judged by its bytes, and the size limit is inclusive.
      const jpeg = new Uint8Array(maxReceiptBytes)
      jpeg.set([0xff, 0xd8, 0xff, 0xe0])
      const ok = yield* lifecycle.confirmByTrader(w.trader, w.orderId, { bytes: jpeg, declaredType: "application/octet-stream" })
      expect(ok.order.status).toBe("completed")
      expect((yield* footprint(w.orderId)).traderProofKey).toMatch(/\.jpg$/)
    }))

  it.effect("20 concurrent trader confirmations: exactly one completes, the rest are InvalidTransition, one posting", () =>
    Effect.gen(function*() {
      const lifecycle = yield* manager
      for (const direction of ["payin", "payout"] as const) {
        const w = yield* world(direction)
        const exits = yield* Effect.all(
          Array.from({ length: 20 }, () => Effect.exit(lifecycle.confirmByTrader(w.trader, w.orderId, png()))),
          { concurrency: "unbounded" }
        )
        const tags = exits.map(failureTag)
        expect(tags.filter((tag) => tag === "Success")).toHaveLength(1)
        expect(tags.filter((tag) => tag === "InvalidTransition")).toHaveLength(19)
        const after = yield* footprint(w.orderId)
        expect(after.transfers).toBe("hold,post")
        expect(after.audits).toBe("order.completed")
        expect(after.callbacks).toBe("order.completed")
        // Receipts of refused confirmations are only those that got past the pre-check before the winner committed.
        expect(after.receipts.length).toBeGreaterThanOrEqual(1)
      }
      yield* expectReconciled
    }).pipe(quiet))

  it.effect("concurrent confirm, cancel and dispute: exactly one wins and the ledger matches the winner", () =>
    Effect.gen(function*() {
      const lifecycle = yield* manager
      for (let round = 0; round < 5; round++) {
        const w = yield* world(round % 2 === 0 ? "payin" : "payout")
        const exits = yield* Effect.all([
          Effect.exit(lifecycle.confirmByTrader(w.trader, w.orderId, png())),
          Effect.exit(lifecycle.cancel(LifecycleActor.Trader(w.trader), w.orderId, "race")),
          Effect.exit(lifecycle.cancel(LifecycleActor.Store({ store: w.store, role: "merchant" }), w.incomingOrderId, "race")),
          Effect.exit(lifecycle.dispute(LifecycleActor.Staff({ user: w.admin }), w.orderId, "race"))
        ], { concurrency: "unbounded" })
        const winners = exits.filter(Exit.isSuccess)
        expect(exits.map(failureTag).sort(), JSON.stringify(exits.map((exit) => Exit.isFailure(exit) ? String(exit.cause) : "ok"))).toContain("Success")
        expect(winners).toHaveLength(1)
        expect(exits.filter((exit) => failureTag(exit) === "InvalidTransition")).toHaveLength(3)
        const status = winners[0]!.value.to
        const after = yield* footprint(w.orderId)
        expect(after.status).toBe(status)
        expect(after.transfers).toBe(status === "completed" ? "hold,post" : status === "cancelled" ? "hold,void" : "hold")
        expect(after.audits).toBe(`order.${status}`)
      }
      yield* expectReconciled
    }).pipe(quiet))

  it.effect("expire: assigned → failed (voided), pending → requires_attention (held), others untouched", () =>
    Effect.gen(function*() {
      const lifecycle = yield* manager
      const sql = yield* SqlClient.SqlClient
      const pastDue = (orderId: number) => sql`UPDATE order_history SET expires_at = now() - interval '1 second' WHERE id = ${orderId}`
      const a = yield* world("payin")
      expect(yield* lifecycle.expire(a.orderId)).toBe("not-expired")
      yield* pastDue(a.orderId)
      expect(yield* lifecycle.expire(a.orderId)).toBe("failed")
      expect(yield* footprint(a.orderId)).toMatchObject({
        status: "failed",
        statusReason: "expired",
        incomingStatus: "assigned",
        transfers: "hold,void",
        audits: "order.failed",
        callbacks: "order.failed"
      })
      expect((yield* balancesOf(a)).trader.frozen).toBe("0.000000")
      expect(yield* lifecycle.expire(a.orderId)).toBe("not-expired")

      const b = yield* world("payin")
      yield* lifecycle.confirmByClient(b.store, b.incomingOrderId, png())
      yield* pastDue(b.orderId)
      const result = yield* lifecycle.expire(b.orderId).pipe(quiet)
      expect(result).toBe("requires_attention")
      expect(yield* footprint(b.orderId)).toMatchObject({ status: "requires_attention", transfers: "hold" })
      expect((yield* balancesOf(b)).trader.frozen).toBe("15.891892")
      // Still resolvable by a person, and the trader can still confirm nothing.
      expect(failureTag(yield* Effect.exit(lifecycle.confirmByTrader(b.trader, b.orderId, undefined)))).toBe("InvalidTransition")
      yield* lifecycle.adminTransition(b.admin, b.orderId, "completed", "trader confirmed by phone")
      expect((yield* footprint(b.orderId)).transfers).toBe("hold,post")
      // Nobody else can time an order out.
      const c = yield* world("payin")
      yield* pastDue(c.orderId)
      expect(failureTag(yield* Effect.exit(lifecycle.adminTransition(c.admin, c.orderId, "failed", "manual timeout")))).toBe("InvalidTransition")
      expect(failureTag(yield* Effect.exit(lifecycle.expire(987654321)))).toBe("OrderNotFound")
      yield* expectReconciled
    }))

  it.effect("fraud hook: a held confirmation becomes a dispute (hold kept, decision stored and audited)", () =>
    Effect.gen(function*() {
      const lifecycle = yield* manager
      const fraud = yield* FraudDetector
      const customerId = `cust-${Date.now()}`
      const w = yield* world("payin", { customerId })
      yield* fraud.createListEntry({ listType: "black", entityKind: "customer_id", value: customerId, reason: "chargebacks" }, w.admin, null)
      const outcome = yield* lifecycle.confirmByTrader(w.trader, w.orderId, png()).pipe(quiet)
      expect(outcome.requested).toBe("completed")
      expect(outcome.to).toBe("dispute")
      expect(outcome.fraud?.decision).toBe("REQUIRE_MANUAL_REVIEW")
      const after = yield* footprint(w.orderId)
      expect(after).toMatchObject({ status: "dispute", transfers: "hold", audits: "order.dispute", callbacks: "order.dispute", fraudChecks: 1 })
      expect(after.statusReason).toMatch(/^fraud check REQUIRE_MANUAL_REVIEW/)
      expect(after.traderProofKey).not.toBeNull()
      yield* lifecycle.adminTransition(w.admin, w.orderId, "cancelled", "confirmed fraud")
      expect((yield* footprint(w.orderId)).transfers).toBe("hold,void")
      yield* expectReconciled
    }))

  it.effect("listTraderOrders: own orders only, filtered by status, paginated with a total", () =>
    Effect.gen(function*() {
      const lifecycle = yield* manager
      const balances = yield* BalanceManager
      const w = yield* world("payin")
      const extra = []
      for (let index = 0; index < 4; index++) {
        const { orderId } = yield* insertOrderHistory({ storeId: w.storeId, traderId: w.traderId, requisiteId: w.requisiteId, direction: "payout" })
        yield* atomic("test.hold", balances.hold(orderId))
        extra.push(orderId)
      }
      yield* lifecycle.cancel(LifecycleActor.Trader(w.trader), extra[0]!, "not today")
      yield* world("payin") // another trader's order
      const all = yield* lifecycle.listTraderOrders(w.traderId, {})
      expect(all.total).toBe(5)
      expect(all.items.map((item) => item.id).sort()).toEqual([w.orderId, ...extra].sort())
      const assigned = yield* lifecycle.listTraderOrders(w.traderId, { status: "assigned" })
      expect(assigned.total).toBe(4)
      expect(assigned.items.every((item) => item.status === "assigned")).toBe(true)
      const page = yield* lifecycle.listTraderOrders(w.traderId, { limit: 2, offset: 2 })
      expect(page.total).toBe(5)
      expect(page.items).toHaveLength(2)
      expect(page.items.map((item) => item.id)).toEqual(all.items.slice(2, 4).map((item) => item.id))
      const payout = all.items.find((item) => item.direction === "payout")!
      expect(payout.payoutDestination).toEqual({ details: "2202000000000000", holderName: "PETR PETROV", bankCode: "sber" })
      expect((yield* lifecycle.listTraderOrders(w.traderId, { limit: 1000, offset: -5 })).items).toHaveLength(5)
    }))
})
