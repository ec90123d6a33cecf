import { SqlClient } from "@effect/sql"
import {
  Config,
  Duration,
  Effect,
  Fiber,
  FiberSet,
  Layer,
  Metric,
  MetricBoundaries,
  Option,
  Queue,
  Ref,
  Stream
} from "effect"
import { AppConfig } from "../layers/Config.js"
import { DatabaseMode } from "../layers/Database.js"
import { OrderWakeup } from "../layers/OrderWakeup.js"
import { ErrorReporter } from "../services/ErrorReporter.js"
import { FraudDetector } from "../services/FraudDetector.js"
import { OrderProcessor } from "../services/OrderProcessor.js"
import { supervise } from "./Supervisor.js"

/**
 * The order worker (SPEC §5.4): claims due incoming orders in batches and runs the OrderProcessor on
 * them with bounded concurrency. Any number of these, in any number of processes, share one
 * database: a claim moves the orders' `next_attempt_at` a lease into the future in the same
 * statement that selects them `FOR UPDATE SKIP LOCKED`, so concurrent pickers take disjoint sets,
 * and the orders of a worker that died come back on their own when the lease runs out. The lease
 * only spreads work; correctness (one assignment per order) rests on the processor's row lock and
 * the UNIQUE order_history key.
 */

/**
 * How long a claim keeps other workers away. Longer than a batch normally takes; a worker that
 * crashed delays its claimed orders by at most this much.
 */
const claimLeaseConfig = Config.duration("WORKER_CLAIM_LEASE").pipe(Config.withDefault(Duration.seconds(30)))
/** On shutdown, in-flight orders get this long to finish before they are interrupted (and rolled back). */
const shutdownGraceConfig = Config.duration("WORKER_SHUTDOWN_GRACE").pipe(Config.withDefault(Duration.seconds(25)))

/** The queue-depth gauge counts at most this many rows: past it the number only says "a lot". */
const queueDepthCountMax = 10_000

const queueDepth = Metric.gauge("jivapay_order_queue_depth", {
  description: `Incoming orders due for processing (counted up to ${queueDepthCountMax})`
})
const pickToAssignMs = Metric.histogram(
  "jivapay_order_pick_to_assign_ms",
  MetricBoundaries.exponential({ start: 1, factor: 2, count: 16 }),
  "From the worker's claim of an order to its assignment, in milliseconds"
)
const ordersClaimed = Metric.counter("jivapay_orders_claimed_total", {
  description: "Incoming orders claimed by workers"
})

export interface OrderWorkerStats {
  readonly loops: number
  readonly claimed: number
  readonly assigned: number
}

export class OrderWorker extends Effect.Service<OrderWorker>()("OrderWorker", {
  scoped: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AppConfig
    const mode = yield* DatabaseMode
    const processor = yield* OrderProcessor
    const wakeup = yield* OrderWakeup
    const reporter = yield* ErrorReporter
    const claimLease = yield* claimLeaseConfig
    const shutdownGrace = yield* shutdownGraceConfig

    const batchSize = config.workerBatchSize
    // Embedded PGlite has one connection: parallel orders would only queue for it.
    const concurrency = mode.embedded ? 1 : config.workerConcurrency
    const stats = yield* Ref.make<OrderWorkerStats>({ loops: 0, claimed: 0, assigned: 0 })

    /** One pending "look now" is enough: further wake-ups while one is pending add nothing. */
    const signal = yield* Queue.sliding<void>(1)

    const claimDueOrders = sql<{ id: number }>`UPDATE incoming_orders
        SET next_attempt_at = now() + make_interval(secs => ${Duration.toMillis(claimLease) / 1000})
        WHERE id IN (
          SELECT id FROM incoming_orders
          WHERE status IN ('new', 'retrying') AND next_attempt_at <= now()
          ORDER BY next_attempt_at, id
          LIMIT ${batchSize}
          FOR UPDATE SKIP LOCKED)
        RETURNING id`.pipe(Effect.map((rows) => rows.map((row) => row.id).sort((a, b) => a - b)))

    const refreshQueueDepth = sql<{ depth: number }>`SELECT count(*)::int AS depth FROM (
        SELECT 1 FROM incoming_orders
        WHERE status IN ('new', 'retrying') AND next_attempt_at <= now()
        LIMIT ${queueDepthCountMax}) due`.pipe(
      Effect.flatMap((rows) => Metric.set(queueDepth, rows[0]?.depth ?? 0)),
      // Only a metric: a failed count must not stop the picking.
      Effect.catchAll((error) => Effect.logDebug("queue depth not refreshed", error.message))
    )

    const processClaimed = (incomingOrderId: number, claimedAtMs: number) =>
      Effect.gen(function*() {
        const outcome = yield* processor.processIncomingOrder(incomingOrderId)
        if (outcome._tag === "Assigned") {
          yield* Metric.update(pickToAssignMs, Date.now() - claimedAtMs)
          yield* Ref.update(stats, (current) => ({ ...current, assigned: current.assigned + 1 }))
        }
      })

    const processBatch = (ids: ReadonlyArray<number>, claimedAtMs: number) =>
      Effect.forEach(ids, (id) => processClaimed(id, claimedAtMs), { concurrency, discard: true })

    // Batches run in this set, outside the loop's fiber: stopping the loop does not cut them short.
    const inFlight = yield* FiberSet.make<void>()
    // Embedded PGlite: no deadline, since interrupting a transaction's query there would hang on the
    // single connection that transaction holds (see OrderProcessor); in-flight orders always finish.
    const awaitInFlight = mode.embedded
      ? Effect.as(FiberSet.awaitEmpty(inFlight), true)
      : Effect.map(Effect.timeoutOption(FiberSet.awaitEmpty(inFlight), shutdownGrace), Option.isSome)
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(awaitInFlight, (finished) =>
        finished
          ? Effect.logInfo("order worker stopped; in-flight orders finished")
          : Effect.logWarning(`in-flight orders did not finish within ${Duration.format(shutdownGrace)}; interrupting them`))
    )

    /** Claims one batch and starts it; the claim and the start are one step so no claim is left unprocessed. */
    const claimAndStart = Effect.uninterruptible(
      Effect.gen(function*() {
        const ids = yield* claimDueOrders
        const claimedAtMs = Date.now()
        if (ids.length === 0) return { claimed: 0, batch: undefined }
        yield* Metric.incrementBy(ordersClaimed, ids.length)
        const batch = yield* FiberSet.run(inFlight, processBatch(ids, claimedAtMs))
        return { claimed: ids.length, batch }
      })
    )

    const waitForWork = Effect.raceAll([Queue.take(signal), Effect.sleep(config.workerPollInterval)])

    const pickLoop = Effect.gen(function*() {
      while (true) {
        const { batch, claimed } = yield* claimAndStart
        yield* Ref.update(stats, (current) => ({ loops: current.loops + 1, claimed: current.claimed + claimed, assigned: current.assigned }))
        yield* refreshQueueDepth
        if (batch !== undefined) yield* Fiber.join(batch)
        // A full batch means more may be due right now; otherwise wait for a wake-up or the poll.
        if (claimed < batchSize) yield* waitForWork
      }
    })

    const listenLoop = Stream.runForEach(wakeup.wakeups, () => Queue.offer(signal, undefined))

    // Registered after the in-flight finalizer, so on shutdown these stop first, then in-flight orders finish.
    yield* Effect.forkScoped(supervise("order-wakeup-listener", listenLoop))
    yield* Effect.forkScoped(
      supervise("order-pick-loop", pickLoop, {
        onCrash: (cause) => reporter.reportCriticalError(cause, { component: "OrderWorker.pickLoop" })
      })
    )
    yield* Effect.logInfo("order worker started").pipe(
      Effect.annotateLogs({
        batchSize,
        concurrency,
        pollInterval: Duration.format(config.workerPollInterval),
        claimLease: Duration.format(claimLease),
        wakeup: mode.embedded ? "in-process" : "LISTEN/NOTIFY"
      })
    )

    return {
      /** Asks the loop to look for due orders now (as a NOTIFY would). */
      wake: Queue.offer(signal, undefined),
      stats: Ref.get(stats)
    } as const
  })
}) {}

/**
 * The worker with the services it runs on; what remains is infrastructure (database, wake-up,
 * key-value store, configuration) from the entry point's InfraLive.
 */
export const OrderWorkerLive = OrderWorker.Default.pipe(
  Layer.provide(OrderProcessor.Default),
  Layer.provide([FraudDetector.Default, ErrorReporter.Default])
)
