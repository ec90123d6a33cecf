import { SqlClient } from "@effect/sql"
import { Duration, Effect, Layer, Metric, Schedule } from "effect"
import { ErrorReporter } from "../services/ErrorReporter.js"
import { OrderStatusManager } from "../services/OrderStatusManager.js"
import { supervise } from "./Supervisor.js"

/** Expired orders handled per round: a backlog drains over several rounds instead of one huge one. */
const EXPIRED_BATCH_MAX = 200
const TIMEOUT_SCAN_INTERVAL = Duration.seconds(5)

const ordersExpired = Metric.counter("jivapay_orders_expired_total", { description: "Orders moved by the timeout worker" })

/**
 * One round: every open order past `expires_at` is moved by the state machine — assigned → failed
 * (hold voided), pending_trader_confirmation → requires_attention (hold kept for a person). Each
 * order is its own transaction and re-checks expiry under its row lock, so two workers scanning at
 * once move each order once (a concurrent round just finds them already moved).
 */
export const expireDueOrders = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const statusManager = yield* OrderStatusManager
  const reporter = yield* ErrorReporter
  const due = yield* sql<{ id: number }>`
    SELECT id FROM order_history
    WHERE status IN ('assigned', 'pending_trader_confirmation') AND expires_at <= now()
    ORDER BY expires_at
    LIMIT ${EXPIRED_BATCH_MAX}`
  let moved = 0
  for (const { id } of due) {
    const outcome = yield* statusManager.expire(id).pipe(
      Effect.catchAllCause((cause) =>
        Effect.as(reporter.reportCriticalError(cause, { component: "TimeoutWorker", orderId: id }), "error" as const))
    )
    if (outcome === "failed" || outcome === "requires_attention") {
      moved++
      yield* Metric.update(ordersExpired.pipe(Metric.tagged("to", outcome)), 1)
      // Operators are told: an expired order is money a person may have to look at.
      yield* Effect.logWarning(`order ${id} expired → ${outcome}`).pipe(Effect.annotateLogs({ alert: "order_expired" }))
    }
  }
  return moved
}).pipe(Effect.withSpan("TimeoutWorker.expireDueOrders"))

export const TimeoutWorkerLive = Layer.scopedDiscard(
  Effect.gen(function*() {
    const reporter = yield* ErrorReporter
    const loop = expireDueOrders.pipe(Effect.repeat(Schedule.spaced(TIMEOUT_SCAN_INTERVAL)))
    yield* Effect.forkScoped(
      supervise("TimeoutWorker", loop, {
        onCrash: (cause) => reporter.reportCriticalError(cause, { component: "TimeoutWorker" })
      })
    )
  })
)
