import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { BigDecimal, Deferred, Duration, Effect, Exit, Fiber, Layer, Logger, LogLevel } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { UserId } from "../../src/domain/Ids.js"
import type { UserPrincipal } from "../../src/domain/Principal.js"
import type { Direction } from "../../src/domain/Status.js"
import { AppConfig } from "../../src/layers/Config.js"
import { KeyValue } from "../../src/layers/KeyValue.js"
import { ObjectStore } from "../../src/layers/ObjectStore.js"
import { OrderWakeup } from "../../src/layers/OrderWakeup.js"
import { atomic } from "../../src/services/Atomic.js"
import { AuditLogger } from "../../src/services/AuditLogger.js"
import { BalanceManager } from "../../src/services/BalanceManager.js"
import { ErrorReporter, ReportedErrors } from "../../src/services/ErrorReporter.js"
import { OrderProcessor } from "../../src/services/OrderProcessor.js"
import { LifecycleActor, OrderStatusManager, type Receipt } from "../../src/services/OrderStatusManager.js"
import { hashPassword } from "../../src/services/Passwords.js"
import { Reconciliation } from "../../src/services/Reconciliation.js"
import { ReferenceData } from "../../src/services/ReferenceData.js"
import { RequisiteSelector } from "../../src/services/RequisiteSelector.js"
import {
  createIncomingOrder,
  createRequisite,
  createStore,
  createTrader,
  createUser,
  insertOrderHistory,
  resetBusinessTables
} from "../support/fixtures.js"
import {
  awaitHealthy,
  childEnv,
  CLUSTER_PASSWORD,
  http,
  type HttpResult,
  login,
  receiptForm,
  spawnNode
} from "../support/invariants/cluster.js"
import {
  armGate,
  backendAlive,
  GatedFraudDetector,
  GatedOutbox,
  GatesLive,
  terminateBackend
} from "../support/invariants/gates.js"
import { checkLedger, readLedgerSnapshot, statusCounts } from "../support/invariants/ledgerChecks.js"
import { formatMicro, parseMicro } from "../support/invariants/ledgerModel.js"
import {
  eventually,
  insertIncomingOrders,
  ScratchDatabase,
  ScratchDatabaseLive,
  spawnWorker,
  workerEnv
} from "../support/workerProcess.js"

/**
 * Faults (SPEC §8, issue 4): (a) OS processes SIGKILLed between assignment and posting, and in the
 * middle of a burst of confirmations; (b) a database connection dropped (`pg_terminate_backend`) in
 * the middle of a transaction that has already placed a hold, posted a completion, written a deposit
 * or assigned an order. Afterwards nothing is lost, nothing is doubled, nothing is half done: every
 * order is either open with its hold or finished and posted/voided exactly once, the pool recovers,
 * and retrying the cut-off operation succeeds exactly once.
 */

const objectDir = mkdtempSync(join(tmpdir(), "jivapay-faults-"))
const quiet = Logger.withMinimumLogLevel(LogLevel.None)

const TestLayer = Layer.mergeAll(
  OrderStatusManager.DefaultWithoutDependencies,
  OrderProcessor.DefaultWithoutDependencies,
  Reconciliation.Default
).pipe(
  Layer.provideMerge(Layer.mergeAll(
    BalanceManager.Default,
    AuditLogger.Default,
    GatedOutbox,
    GatedFraudDetector,
    RequisiteSelector.Default,
    ReferenceData.Default,
    ErrorReporter.Test,
    OrderWakeup.layer
  )),
  Layer.provideMerge(GatesLive),
  Layer.provideMerge(Layer.mergeAll(
    KeyValue.layerMemory,
    ObjectStore.layerLocal(objectDir),
    AppConfig.layerWith({ maxReceiptBytes: 4096, retryBaseDelay: Duration.millis(200), retryMaxDelay: Duration.seconds(1) })
  )),
  Layer.provideMerge(ScratchDatabaseLive({ maxConnections: 6 }))
)

// ---- the world ---------------------------------------------------------------------------------------

const png = (): Receipt => {
  const bytes = new Uint8Array(64)
  bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
  return { bytes, declaredType: "image/png", fileName: "receipt.png" }
}

const principal = (userId: number, role: UserPrincipal["role"], traderId: number | null = null): UserPrincipal => ({
  userId: userId as UserId,
  role,
  sessionId: 0,
  merchantId: null,
  traderId
})

interface FaultWorld {
  readonly admin: UserPrincipal
  readonly storeId: number
  readonly traders: ReadonlyArray<{
    readonly traderId: number
    readonly requisiteId: number
    readonly email: string
    readonly actor: { readonly user: UserPrincipal; readonly traderId: number }
  }>
  /** Deposits made through the ledger: what the balances must add up to. */
  readonly externalNet: bigint
}

/**
 * A clean slate funded through the ledger only (so reconciliation must hold): one store, `traders`
 * traders with a requisite each and a password to log in with, and a RUB/USDT rate.
 */
const buildWorld = (options: { readonly traders: number; readonly traderDeposit: string; readonly storeDeposit: string }) =>
  Effect.gen(function*() {
    yield* resetBusinessTables
    const balances = yield* BalanceManager
    const admin = principal(yield* createUser({ role: "admin" }), "admin")
    const passwordHash = yield* hashPassword(CLUSTER_PASSWORD)
    const { storeId } = yield* createStore()
    yield* balances.deposit({ kind: "store", id: storeId }, BigDecimal.unsafeFromString(options.storeDeposit), admin, null)
    const traders = []
    for (let index = 0; index < options.traders; index++) {
      const email = `fault-trader-${index}-${Date.now()}@faults.test`
      const userId = yield* createUser({ role: "trader", email, passwordHash })
      const { traderId } = yield* createTrader({ userId, balance: "0" })
      yield* balances.deposit({ kind: "trader", id: traderId }, BigDecimal.unsafeFromString(options.traderDeposit), admin, null)
      const requisiteId = yield* createRequisite(traderId, {
        settings: { maxOrdersPerDay: 10_000, maxOpenOrders: 10_000, dailyTurnoverLimit: "100000000.00", monthlyTurnoverLimit: "100000000.00" }
      })
      traders.push({ traderId, requisiteId, email, actor: { user: principal(userId, "trader", traderId), traderId } })
    }
    yield* Effect.orDie((yield* ReferenceData).setRateByAdmin(admin, "RUB", "USDT", BigDecimal.unsafeFromString("92.5")))
    const externalNet = parseMicro(options.storeDeposit) + parseMicro(options.traderDeposit) * BigInt(options.traders)
    return { admin, storeId, traders, externalNet } satisfies FaultWorld
  }).pipe(Effect.orDie)

/** An assigned order with its hold, as the OrderProcessor leaves it (1500 RUB at 92.5, the fixture's amounts). */
const heldOrder = (world: FaultWorld, traderIndex: number, direction: Direction) =>
  Effect.gen(function*() {
    const trader = world.traders[traderIndex]!
    const balances = yield* BalanceManager
    const incomingOrderId = yield* createIncomingOrder({ storeId: world.storeId, direction, status: "assigned" })
    const { orderId } = yield* insertOrderHistory({
      storeId: world.storeId,
      traderId: trader.traderId,
      requisiteId: trader.requisiteId,
      direction,
      incomingOrderId
    })
    yield* Effect.orDie(atomic("fault.hold", balances.hold(orderId)))
    return { orderId, incomingOrderId, traderIndex, direction }
  })

/** The ledger is sound, reconciliation is clean and the balances add up to the world's deposits. */
const assertLedgerSound = (world: FaultWorld, when: string) =>
  Effect.gen(function*() {
    const { snapshot, violations } = yield* checkLedger
    expect(violations, `ledger invariants ${when}`).toEqual([])
    expect(formatMicro(snapshot.externalNet), `external net ${when}`).toBe(formatMicro(world.externalNet))
    const report = yield* (yield* Reconciliation).run()
    expect(report.differences, `reconciliation ${when}`).toEqual([])
    expect(report.ok).toBe(true)
    return snapshot
  })

/** Everything a move writes beside the order row, per order: audit rows and merchant callbacks of one event. */
const sideRows = (orderId: number, event: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      Effect.orDie(sql<{ audits: number; callbacks: number }>`SELECT
          (SELECT count(*)::int FROM audit_logs WHERE target_entity = 'order' AND target_id = ${String(orderId)}
             AND action = ${event}) AS audits,
          (SELECT count(*)::int FROM merchant_callbacks c JOIN order_history o ON o.incoming_order_id = c.incoming_order_id
             WHERE o.id = ${orderId} AND c.event = ${event}) AS callbacks`),
      (rows) => rows[0]!
    ))

/** Many more queries at once than the pool has connections: a dead connection left in it would fail some. */
const poolAnswers = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.forEach(
    Array.from({ length: 24 }, (_, index) => index),
    (index) => Effect.map(sql<{ n: number }>`SELECT ${index}::int AS n, pg_sleep(0.01)`, (rows) => rows[0]!.n),
    { concurrency: "unbounded" }
  ))

// ---------------------------------------------------------------------------------------------------

layer(TestLayer, { excludeTestServices: true })("faults", (it) => {
  it.effect("a worker SIGKILLed between assignment and posting: the orders complete once through another path", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { url } = yield* ScratchDatabase
      const manager = yield* OrderStatusManager
      const world = yield* buildWorld({ traders: 4, traderDeposit: "100000", storeDeposit: "100000" })
      const ORDER_COUNT = 120
      yield* insertIncomingOrders(Array.from({ length: ORDER_COUNT }, (_, index) => ({
        storeId: world.storeId,
        direction: index % 3 === 0 ? "payout" as const : "payin" as const,
        amount: (500 + (index % 40) * 61.25).toFixed(2),
        bankCode: null
      })))
      // Assigned at some point: a cancelled order's incoming row says `cancelled`, so count the orders themselves.
      const assigned = sql<{ count: number }>`SELECT count(*)::int AS count FROM order_history`
        .pipe(Effect.map((rows) => rows[0]!.count))

      // One slow worker claims everything and assigns one order at a time; it dies mid-batch.
      const env = workerEnv({
        WORKER_BATCH_SIZE: 1000,
        WORKER_CONCURRENCY: 1,
        WORKER_CLAIM_LEASE: "3 seconds",
        WORKER_POLL_INTERVAL: "200 millis",
        DATABASE_MAX_CONNECTIONS: 3
      })
      const doomed = yield* spawnWorker(url, env)
      yield* Effect.timeout(doomed.ready, Duration.seconds(60))
      yield* sql`SELECT pg_notify('jivapay_new_order', 'batch')`
      yield* eventually("the first assignments", Effect.map(assigned, (count) => count >= 15), Duration.seconds(60))
      yield* doomed.kill("SIGKILL")
      expect(yield* Effect.timeout(doomed.exited, Duration.seconds(10))).toBe("SIGKILL")

      // Right after the kill: every order that exists has exactly its hold; a cut-off assignment left nothing.
      const atKill = yield* assertLedgerSound(world, "right after the kill")
      // The order row, its hold and the incoming order's status commit together or not at all.
      const [incomingAssigned] = yield* sql<{ count: number }>`SELECT count(*)::int AS count FROM incoming_orders
        WHERE status = 'assigned'`
      const assignedAtKill = atKill.orders.size
      expect(incomingAssigned!.count).toBe(assignedAtKill)
      expect(statusCounts(atKill)).toEqual({ assigned: assignedAtKill })
      expect(assignedAtKill).toBeLessThan(ORDER_COUNT)

      // The held orders are settled in this process (every fifth cancelled, the rest confirmed) while
      // another worker process takes over the dead one's queue once its claim lease runs out.
      const settleOpenOrders = Effect.gen(function*() {
        const snapshot = yield* readLedgerSnapshot
        const open = [...snapshot.orders.values()].filter((order) => order.status === "assigned")
        yield* Effect.forEach(open, (order) => {
          const trader = world.traders.find((candidate) => candidate.traderId === order.traderId)!
          return order.orderId % 5 === 0
            ? manager.cancel(LifecycleActor.Trader(trader.actor), order.orderId, "customer never paid")
            : manager.confirmByTrader(trader.actor, order.orderId, png())
        }, { concurrency: 4, discard: true })
      }).pipe(quiet)

      const survivor = yield* spawnWorker(url, env)
      yield* Effect.timeout(survivor.ready, Duration.seconds(60))
      yield* settleOpenOrders
      yield* eventually("every order assigned", Effect.map(assigned, (count) => count === ORDER_COUNT), Duration.seconds(60))
      yield* settleOpenOrders

      const final = yield* assertLedgerSound(world, "after settling")
      expect(final.orders.size).toBe(ORDER_COUNT)
      const counts = statusCounts(final)
      expect((counts.completed ?? 0) + (counts.cancelled ?? 0)).toBe(ORDER_COUNT)
      for (const order of final.orders.values()) {
        expect(order.holds, `holds of order ${order.orderId}`).toBe(1)
        expect(order.posts + order.voids, `settlements of order ${order.orderId}`).toBe(1)
      }
      const [retried] = yield* sql<{ count: number }>`SELECT count(*)::int AS count FROM incoming_orders WHERE retry_count > 0`
      process.stdout.write(`${JSON.stringify({ killedWorker: { assignedAtKill, statuses: counts, retried: retried!.count } })}\n`)
    }).pipe(Effect.scoped), 150_000)

  it.effect("a serving process SIGKILLed in the middle of a burst of confirmations: each order posted once or still held", () =>
    Effect.gen(function*() {
      const { url } = yield* ScratchDatabase
      const manager = yield* OrderStatusManager
      const world = yield* buildWorld({ traders: 2, traderDeposit: "5000", storeDeposit: "5000" })
      const ORDER_COUNT = 160
      const KILL_AFTER_ACKNOWLEDGED = 25
      const orders = yield* Effect.forEach(
        Array.from({ length: ORDER_COUNT }, (_, index) => index),
        (index) => heldOrder(world, index % 2, index % 4 === 3 ? "payout" : "payin")
      )
      const node = yield* spawnNode("serve", childEnv(url, { DATABASE_MAX_CONNECTIONS: "4" }))
      yield* awaitHealthy(node)
      const tokens = yield* Effect.promise(() =>
        Promise.all(world.traders.map((trader) => login(node.baseUrl, trader.email, CLUSTER_PASSWORD))))

      // Every confirmation at once; the process dies as soon as a few of them are acknowledged.
      const acknowledged = yield* Deferred.make<void>()
      let acknowledgedSoFar = 0
      const responses = new Map<number, HttpResult>()
      const burst = yield* Effect.fork(Effect.promise(() =>
        Promise.all(orders.map(async (order) => {
          const result = await http(node.baseUrl, "POST", `/api/trader/orders/${order.orderId}/confirm`, {
            token: tokens[order.traderIndex]!,
            form: receiptForm,
            timeoutMs: 20_000
          })
          responses.set(order.orderId, result)
          if (result.status === 200 && ++acknowledgedSoFar >= KILL_AFTER_ACKNOWLEDGED) Deferred.unsafeDone(acknowledged, Exit.void)
        }))
      ))
      yield* Effect.timeout(Deferred.await(acknowledged), Duration.seconds(30))
      node.child.kill("SIGKILL")
      yield* Effect.promise(() => node.exited)
      yield* Fiber.join(burst)

      // Never half: completed and posted once (with its audit row and callback), or open and held.
      const atKill = yield* assertLedgerSound(world, "after the kill")
      const completed: Array<number> = []
      for (const order of orders) {
        const row = atKill.orders.get(order.orderId)!
        const side = yield* sideRows(order.orderId, "order.completed")
        if (row.status === "completed") {
          completed.push(order.orderId)
          expect({ posts: row.posts, voids: row.voids, ...side }, `completed order ${order.orderId}`).toEqual({
            posts: 1,
            voids: 0,
            audits: 1,
            callbacks: 1
          })
        } else {
          expect({ status: row.status, holds: row.holds, posts: row.posts, ...side }, `open order ${order.orderId}`).toEqual({
            status: "assigned",
            holds: 1,
            posts: 0,
            audits: 0,
            callbacks: 0
          })
        }
        // What the process acknowledged before it died is durable.
        if (responses.get(order.orderId)?.status === 200) expect(row.status, `acknowledged order ${order.orderId}`).toBe("completed")
      }
      const acknowledgedCount = [...responses.values()].filter((result) => result.status === 200).length
      const cutOff = [...responses.values()].filter((result) => result.status === 0).length
      expect(completed.length).toBeGreaterThanOrEqual(acknowledgedCount)
      expect(completed.length, "the kill landed before the burst was done").toBeLessThan(ORDER_COUNT)

      // The survivors: this process confirms the open orders; the completed ones refuse a second time.
      yield* Effect.forEach(orders, (order) =>
        Effect.gen(function*() {
          const trader = world.traders[order.traderIndex]!
          const outcome = yield* Effect.either(manager.confirmByTrader(trader.actor, order.orderId, png()))
          const wasCompleted = completed.includes(order.orderId)
          expect(outcome._tag === "Left" ? outcome.left._tag : "ok", `reconfirm ${order.orderId}`).toBe(
            wasCompleted ? "InvalidTransition" : "ok"
          )
        }), { concurrency: 4, discard: true }).pipe(quiet)
      const final = yield* assertLedgerSound(world, "after the survivors confirmed")
      expect(statusCounts(final)).toEqual({ completed: ORDER_COUNT })
      for (const order of final.orders.values()) expect(order.posts, `postings of ${order.orderId}`).toBe(1)
      process.stdout.write(`${JSON.stringify({
        killedMidConfirmations: { orders: ORDER_COUNT, completedAtKill: completed.length, acknowledgedCount, cutOff }
      })}\n`)
    }).pipe(Effect.scoped), 150_000)

  it.effect("a connection dropped in the middle of a hold and of a deposit: nothing written, the pool recovers, the retry applies once", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const balances = yield* BalanceManager
      const world = yield* buildWorld({ traders: 1, traderDeposit: "100", storeDeposit: "100" })
      const trader = world.traders[0]!
      const { orderId } = yield* insertOrderHistory({
        storeId: world.storeId,
        traderId: trader.traderId,
        requisiteId: trader.requisiteId,
        direction: "payin"
      })

      /** Runs `body` in a transaction that stops before COMMIT; kills its backend; returns how it ended. */
      const cutOff = <A, E, R>(name: string, body: Effect.Effect<A, E, R>) =>
        Effect.gen(function*() {
          const reached = yield* Deferred.make<number>()
          const release = yield* Deferred.make<void>()
          const transaction = yield* Effect.fork(atomic(name, Effect.gen(function*() {
            const [row] = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
            const result = yield* body
            yield* Deferred.succeed(reached, row!.pid)
            yield* Deferred.await(release)
            return result
          })).pipe(quiet))
          const pid = yield* Deferred.await(reached)
          expect(yield* terminateBackend(pid)).toBe(true)
          yield* eventually("the backend gone", Effect.map(backendAlive(pid), (alive) => !alive), Duration.seconds(10))
          yield* Deferred.succeed(release, undefined)
          return yield* Fiber.await(transaction)
        })

      // The hold: written (frozen, transfer, history) but not committed when its connection dies.
      const holdExit = yield* cutOff("fault.hold", balances.hold(orderId))
      expect(Exit.isFailure(holdExit)).toBe(true)
      expect(yield* balances.ledgerStateOf(orderId)).toBe("none")
      expect(yield* balances.getBalance({ kind: "trader", id: trader.traderId })).toEqual({
        balance: "100.000000",
        frozen: "0.000000",
        available: "100.000000"
      })
      expect(yield* sql`SELECT id FROM balance_trader_crypto_history WHERE order_id = ${orderId}`).toEqual([])
      expect(yield* poolAnswers).toHaveLength(24)

      // The same hold again: once, and a third call is a no-op.
      expect(yield* atomic("fault.hold.retry", balances.hold(orderId))).toBe("held")
      expect(yield* atomic("fault.hold.again", balances.hold(orderId))).toBe("already-held")
      const [holds] = yield* sql<{ count: number }>`SELECT count(*)::int AS count FROM ledger_transfers
        WHERE order_id = ${orderId} AND kind = 'hold'`
      expect(holds!.count).toBe(1)
      // 1500 RUB at 92.5 (fixture amounts): A − t = 16.216216 − 0.324324.
      expect((yield* balances.getBalance({ kind: "trader", id: trader.traderId })).frozen).toBe("15.891892")

      // A deposit cut off the same way leaves no money behind; its retry lands once.
      const depositExit = yield* cutOff(
        "fault.deposit",
        balances.deposit({ kind: "store", id: world.storeId }, BigDecimal.unsafeFromString("250"), world.admin, "cut off")
      )
      expect(Exit.isFailure(depositExit)).toBe(true)
      expect((yield* balances.getBalance({ kind: "store", id: world.storeId })).balance).toBe("100.000000")
      expect(yield* poolAnswers).toHaveLength(24)
      yield* balances.deposit({ kind: "store", id: world.storeId }, BigDecimal.unsafeFromString("250"), world.admin, "retried")
      expect((yield* balances.getBalance({ kind: "store", id: world.storeId })).balance).toBe("350.000000")
      yield* assertLedgerSound({ ...world, externalNet: world.externalNet + parseMicro("250") }, "after the retries")
    }))

  it.effect("a connection dropped while a trader's confirmation has posted but not committed: the retry posts once", () =>
    Effect.gen(function*() {
      const manager = yield* OrderStatusManager
      const balances = yield* BalanceManager
      const world = yield* buildWorld({ traders: 1, traderDeposit: "100", storeDeposit: "100" })
      const trader = world.traders[0]!
      for (const direction of ["payin", "payout"] as const) {
        const order = yield* heldOrder(world, 0, direction)
        const before = yield* readLedgerSnapshot
        // The confirmation stops at its callback: status updated, balances posted, audit written.
        const gate = yield* armGate("outbox.order.completed")
        const confirmation = yield* Effect.fork(manager.confirmByTrader(trader.actor, order.orderId, png()).pipe(quiet))
        const pid = yield* Deferred.await(gate.reached)
        expect(yield* terminateBackend(pid)).toBe(true)
        yield* eventually("the backend gone", Effect.map(backendAlive(pid), (alive) => !alive), Duration.seconds(10))
        yield* Deferred.succeed(gate.release, undefined)
        const exit = yield* Fiber.await(confirmation)
        expect(Exit.isFailure(exit), `${direction}: the cut-off confirmation failed`).toBe(true)

        // Nothing of it survived: still assigned and held, no posting, no audit row, no callback, balances unchanged.
        const after = yield* readLedgerSnapshot
        const row = after.orders.get(order.orderId)!
        expect({ status: row.status, holds: row.holds, posts: row.posts }).toEqual({ status: "assigned", holds: 1, posts: 0 })
        expect(yield* sideRows(order.orderId, "order.completed")).toEqual({ audits: 0, callbacks: 0 })
        expect(after.stores).toEqual(before.stores)
        expect(after.traders).toEqual(before.traders)
        expect(after.platform).toBe(before.platform)
        expect(yield* poolAnswers).toHaveLength(24)

        // The trader tries again: completed and posted exactly once; a third try is refused.
        const retried = yield* manager.confirmByTrader(trader.actor, order.orderId, png()).pipe(quiet)
        expect(retried.to).toBe("completed")
        const again = yield* Effect.either(manager.confirmByTrader(trader.actor, order.orderId, png()))
        expect(again._tag === "Left" ? again.left._tag : "ok").toBe("InvalidTransition")
        expect(yield* balances.ledgerStateOf(order.orderId)).toBe("posted")
        expect(yield* sideRows(order.orderId, "order.completed")).toEqual({ audits: 1, callbacks: 1 })
      }
      const final = yield* assertLedgerSound(world, "after the retried confirmations")
      for (const order of final.orders.values()) expect(order.posts).toBe(1)
    }))

  it.effect("a connection dropped in the middle of an assignment (in the fraud check, and after the hold): assigned exactly once later", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const processor = yield* OrderProcessor
      const reported = yield* ReportedErrors
      const world = yield* buildWorld({ traders: 2, traderDeposit: "1000", storeDeposit: "1000" })
      for (const [point, direction] of [["fraud.incoming", "payin"], ["outbox.order.assigned", "payout"]] as const) {
        const incomingOrderId = yield* createIncomingOrder({ storeId: world.storeId, direction, amount: "1500.00" })
        yield* reported.clear
        const gate = yield* armGate(point)
        const attempt = yield* Effect.fork(processor.processIncomingOrder(incomingOrderId).pipe(quiet))
        const pid = yield* Deferred.await(gate.reached)
        expect(yield* terminateBackend(pid)).toBe(true)
        yield* eventually("the backend gone", Effect.map(backendAlive(pid), (alive) => !alive), Duration.seconds(10))
        yield* Deferred.succeed(gate.release, undefined)

        // The attempt is recorded as a transient failure in its own transaction; the assignment left nothing.
        const outcome = yield* Fiber.join(attempt)
        expect(outcome._tag, `${point}: ${JSON.stringify(outcome)}`).toBe("Retrying")
        const [incoming] = yield* sql<{ status: string; retryCount: number; assignedOrderId: number | null }>`SELECT status,
            retry_count, assigned_order_id FROM incoming_orders WHERE id = ${incomingOrderId}`
        expect(incoming).toEqual({ status: "retrying", retryCount: 1, assignedOrderId: null })
        const [orders] = yield* sql<{ count: number }>`SELECT count(*)::int AS count FROM order_history
          WHERE incoming_order_id = ${incomingOrderId}`
        expect(orders!.count, `${point}: order rows after the cut`).toBe(0)
        expect((yield* reported.all).some((report) => report.kind === "critical_error"), "the operators heard of it").toBe(true)
        yield* assertLedgerSound(world, `after the cut at ${point}`)
        expect(yield* poolAnswers).toHaveLength(24)

        // Processed again (and again, concurrently): assigned once, one order, one hold.
        const again = yield* processor.processIncomingOrder(incomingOrderId).pipe(quiet)
        expect(again._tag).toBe("Assigned")
        const repeats = yield* Effect.forEach([1, 2, 3], () => processor.processIncomingOrder(incomingOrderId), {
          concurrency: "unbounded"
        }).pipe(quiet)
        expect(repeats.map((repeat) => repeat._tag)).toEqual(["AlreadyProcessed", "AlreadyProcessed", "AlreadyProcessed"])
        const [rows] = yield* sql<{ orders: number; holds: number }>`SELECT count(DISTINCT o.id)::int AS orders,
            count(l.id) FILTER (WHERE l.kind = 'hold')::int AS holds
          FROM order_history o LEFT JOIN ledger_transfers l ON l.order_id = o.id WHERE o.incoming_order_id = ${incomingOrderId}`
        expect(rows).toEqual({ orders: 1, holds: 1 })
      }
      yield* assertLedgerSound(world, "after the reassignments")
    }))
})
