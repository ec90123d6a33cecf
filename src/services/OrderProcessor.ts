import { SqlClient, SqlError } from "@effect/sql"
import {
  BigDecimal,
  Cause,
  Chunk,
  Clock,
  Data,
  Duration,
  Effect,
  Exit,
  Metric,
  MetricBoundaries,
  Option,
  ParseResult,
  Schedule,
  Schema
} from "effect"
import {
  ConfigurationError,
  InsufficientBalance,
  InvalidTransition,
  LimitExceeded,
  NotFound,
  RateUnavailable,
  RequisiteNotFound,
  ValidationError
} from "../domain/Errors.js"
import {
  computeOrderAmounts,
  DecimalFromNumeric,
  formatCrypto,
  formatFiat,
  formatPercent,
  formatPlain,
  formatRate,
  holdAmount,
  type OrderAmounts,
  Percent
} from "../domain/Money.js"
import type { UserPrincipal } from "../domain/Principal.js"
import { Direction, IncomingOrderStatus } from "../domain/Status.js"
import { AppConfig } from "../layers/Config.js"
import { DatabaseMode } from "../layers/Database.js"
import { OrderWakeup } from "../layers/OrderWakeup.js"
import { atomic, dieOnInfrastructure } from "./Atomic.js"
import { AuditLogger } from "./AuditLogger.js"
import { BalanceManager } from "./BalanceManager.js"
import { CallbackOutbox } from "./CallbackOutbox.js"
import { ErrorReporter } from "./ErrorReporter.js"
import { FraudDetector } from "./FraudDetector.js"
import { ReferenceData } from "./ReferenceData.js"
import { type Candidate, RequisiteSelector, type SelectorOrder } from "./RequisiteSelector.js"

/**
 * OrderProcessor (SPEC §5.3): turns one incoming order into an assigned order — requisite chosen,
 * rate fixed, amounts computed, balance held, merchant told — in one transaction, or records why
 * not (and when to try again) in another.
 */

// ---------------------------------------------------------------------------------------------
// Outcomes

export type ProcessOutcome = Data.TaggedEnum<{
  /** order_history row created, hold placed, incoming order `assigned`. */
  Assigned: {
    readonly incomingOrderId: number
    readonly orderId: number
    readonly requisiteId: number
    readonly traderId: number
  }
  /** The order already has an order_history row: nothing was done. */
  AlreadyProcessed: { readonly incomingOrderId: number; readonly orderId: number }
  /** Not due for processing (missing, or no longer new/retrying). */
  Skipped: { readonly incomingOrderId: number; readonly reason: string }
  Retrying: { readonly incomingOrderId: number; readonly reason: string; readonly nextAttemptAt: Option.Option<Date> }
  Failed: { readonly incomingOrderId: number; readonly reason: string }
  ManualReview: { readonly incomingOrderId: number; readonly reason: string }
}>
export const ProcessOutcome = Data.taggedEnum<ProcessOutcome>()

/**
 * Why an attempt did not assign. `code` is a small closed set (it tags metrics); `message` is
 * for people and goes to `failure_reason`.
 */
export type FailureCode =
  | "requisite_not_found"
  | "limit_exceeded"
  | "insufficient_balance"
  | "rate_unavailable"
  | "fraud_denied"
  | "fraud_review"
  | "invalid_order"
  | "configuration"
  | "timeout"
  | "unexpected"

/** transient → retry later; permanent → `failed` now; review → `manual_review` (a person decides). */
export type FailureKind = "transient" | "permanent" | "review"

export interface AttemptFailure {
  readonly kind: FailureKind
  readonly code: FailureCode
  readonly message: string
}

class ProcessingTimeout extends Data.TaggedError("ProcessingTimeout")<{ readonly message: string }> {}

type MainError =
  | RequisiteNotFound
  | LimitExceeded
  | InsufficientBalance
  | RateUnavailable
  | ValidationError
  | ConfigurationError
  | NotFound
  | ProcessingTimeout

/** Typed errors of the main transaction → what the failure means (SPEC §5.3: transient vs permanent). */
export const classifyError = (error: MainError): AttemptFailure => {
  switch (error._tag) {
    case "RequisiteNotFound":
      return { kind: "transient", code: "requisite_not_found", message: error.message }
    case "LimitExceeded":
      return { kind: "transient", code: "limit_exceeded", message: error.message }
    case "InsufficientBalance":
      return { kind: "transient", code: "insufficient_balance", message: error.message }
    case "RateUnavailable":
      return { kind: "transient", code: "rate_unavailable", message: error.message }
    case "ProcessingTimeout":
      return { kind: "transient", code: "timeout", message: error.message }
    case "ValidationError":
      return { kind: "permanent", code: "invalid_order", message: error.message }
    case "ConfigurationError":
    case "NotFound":
      return { kind: "permanent", code: "configuration", message: error.message }
  }
}

// ---------------------------------------------------------------------------------------------
// Retry policy

/**
 * Backoff between attempts of one order: exponential from ORDER_RETRY_BASE_DELAY, capped at
 * ORDER_RETRY_MAX_DELAY, then jittered down to half ("equal jitter") so orders that failed together
 * (e.g. every trader offline) do not all come back in the same instant, and never above the cap.
 */
export const orderRetryPolicy = (baseDelay: Duration.Duration, maxDelay: Duration.Duration) =>
  Schedule.exponential(baseDelay, 2).pipe(
    Schedule.union(Schedule.spaced(maxDelay)),
    Schedule.jitteredWith({ min: 0.5, max: 1 })
  )

/** The policy's delay before attempt `failedAttempts + 1`, read from the Schedule itself. */
export const retryDelayAfter = (
  policy: Schedule.Schedule<unknown>,
  failedAttempts: number
): Effect.Effect<Duration.Duration> =>
  Effect.gen(function*() {
    const nowMs = yield* Clock.currentTimeMillis
    const steps = Math.max(1, failedAttempts)
    const delays = yield* Schedule.run(Schedule.delays(policy), nowMs, Array.from({ length: steps }, () => undefined))
    return Option.getOrElse(Chunk.last(delays), () => Duration.zero)
  })

// ---------------------------------------------------------------------------------------------
// Metrics

const ordersProcessed = Metric.counter("jivapay_orders_processed_total", {
  description: "Processing attempts of incoming orders by outcome and reason"
})
const processingDurationMs = Metric.histogram(
  "jivapay_order_processing_duration_ms",
  MetricBoundaries.exponential({ start: 1, factor: 2, count: 16 }),
  "Time of one processing attempt (both transactions), in milliseconds"
)
const assignLatencyMs = Metric.histogram(
  "jivapay_order_assign_latency_ms",
  MetricBoundaries.exponential({ start: 5, factor: 2, count: 20 }),
  "From the incoming order's creation to its assignment, in milliseconds"
)

const outcomeLabel = (outcome: ProcessOutcome): { readonly outcome: string; readonly reason: string } =>
  ProcessOutcome.$match(outcome, {
    Assigned: () => ({ outcome: "assigned", reason: "none" }),
    AlreadyProcessed: () => ({ outcome: "already_processed", reason: "none" }),
    Skipped: () => ({ outcome: "skipped", reason: "not_due" }),
    Retrying: ({ reason }) => ({ outcome: "retrying", reason: reasonCode(reason) }),
    Failed: ({ reason }) => ({ outcome: "failed", reason: reasonCode(reason) }),
    ManualReview: ({ reason }) => ({ outcome: "manual_review", reason: reasonCode(reason) })
  })

// failure_reason is "<code>: <message>"; the code alone keeps the metric's label set small.
const reasonCode = (reason: string): string => reason.split(":", 1)[0] ?? "unknown"

const failureReasonLengthMax = 500
const failureReasonOf = (failure: AttemptFailure) =>
  `${failure.code}: ${failure.message}`.slice(0, failureReasonLengthMax)

// ---------------------------------------------------------------------------------------------
// Rows

const LockedOrder = Schema.Struct({
  id: Schema.Number,
  storeId: Schema.Number,
  direction: Direction,
  amount: DecimalFromNumeric,
  currency: Schema.String,
  paymentMethod: Schema.String,
  bankCode: Schema.NullOr(Schema.String),
  customerId: Schema.NullOr(Schema.String),
  clientIp: Schema.NullOr(Schema.String),
  status: IncomingOrderStatus,
  retryCount: Schema.Number,
  existingOrderId: Schema.NullOr(Schema.Number),
  storeActive: Schema.Boolean,
  cryptoCurrency: Schema.String,
  payinCommissionPct: Percent,
  payoutCommissionPct: Percent,
  processingTtlSeconds: Schema.Number,
  storeBalance: Schema.NullOr(DecimalFromNumeric),
  storeFrozen: Schema.NullOr(DecimalFromNumeric)
})
type LockedOrder = typeof LockedOrder.Type
const decodeLockedOrders = Schema.decodeUnknown(Schema.Array(LockedOrder))

const RetryRow = Schema.Struct({ id: Schema.Number, status: IncomingOrderStatus, retryCount: Schema.Number })
type RetryRow = typeof RetryRow.Type
const decodeRetryRows = Schema.decodeUnknown(Schema.Array(RetryRow))

export const IncomingOrderItem = Schema.Struct({
  id: Schema.Number,
  storeId: Schema.Number,
  merchantOrderId: Schema.String,
  direction: Direction,
  amount: DecimalFromNumeric,
  currency: Schema.String,
  paymentMethod: Schema.String,
  bankCode: Schema.NullOr(Schema.String),
  status: IncomingOrderStatus,
  retryCount: Schema.Number,
  lastAttemptAt: Schema.NullOr(Schema.DateFromSelf),
  nextAttemptAt: Schema.DateFromSelf,
  failureReason: Schema.NullOr(Schema.String),
  assignedOrderId: Schema.NullOr(Schema.Number),
  createdAt: Schema.DateFromSelf
})
export type IncomingOrderItem = typeof IncomingOrderItem.Type
const decodeItems = Schema.decodeUnknown(Schema.Array(IncomingOrderItem))

/** The JSON view of an incoming order for operators (dead-letter list). */
export const incomingOrderView = (item: IncomingOrderItem) => ({
  id: item.id,
  storeId: item.storeId,
  merchantOrderId: item.merchantOrderId,
  direction: item.direction,
  amount: formatFiat(item.amount),
  currency: item.currency,
  paymentMethod: item.paymentMethod,
  bankCode: item.bankCode,
  status: item.status,
  retryCount: item.retryCount,
  lastAttemptAt: item.lastAttemptAt?.toISOString() ?? null,
  nextAttemptAt: item.nextAttemptAt.toISOString(),
  failureReason: item.failureReason,
  assignedOrderId: item.assignedOrderId,
  createdAt: item.createdAt.toISOString()
})
export type IncomingOrderView = ReturnType<typeof incomingOrderView>

export const listLimitMax = 200

// ---------------------------------------------------------------------------------------------

/** Bounds one attempt: a stuck query must not hold the order's lock (and a worker slot) forever. */
const mainTransactionTimeout = Duration.seconds(20)

const zero = BigDecimal.fromBigInt(0n)

/** Audit rows written by the processor: the system acts, not a user. */
const systemActor = { userId: null, userRole: "system" } as const

interface Assignment {
  readonly orderId: number
  readonly candidate: Candidate
  readonly amounts: OrderAmounts
}

export class OrderProcessor extends Effect.Service<OrderProcessor>()("OrderProcessor", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AppConfig
    const selector = yield* RequisiteSelector
    const balances = yield* BalanceManager
    const referenceData = yield* ReferenceData
    const fraud = yield* FraudDetector
    const audit = yield* AuditLogger
    const outbox = yield* CallbackOutbox
    const reporter = yield* ErrorReporter
    const wakeup = yield* OrderWakeup
    const mode = yield* DatabaseMode

    const retryPolicy = orderRetryPolicy(config.retryBaseDelay, config.retryMaxDelay)

    // -------------------------------------------------------------------------------------------
    // Failure bookkeeping (runs inside whichever transaction the caller opened)

    /**
     * Records one failed attempt on a row locked by the caller: retry fields, the status it leads
     * to, and for a final status its audit row and merchant callback.
     */
    const applyFailure = (row: RetryRow, failure: AttemptFailure) =>
      Effect.gen(function*() {
        const failedAttempts = row.retryCount + 1
        const status = failure.kind === "review"
          ? "manual_review" as const
          : failure.kind === "permanent" || failedAttempts > config.orderMaxRetries
          ? "failed" as const
          : "retrying" as const
        const delay = status === "retrying" ? yield* retryDelayAfter(retryPolicy, failedAttempts) : Duration.zero
        const reason = failure.kind === "transient" && status === "failed"
          ? `${failureReasonOf(failure)} (gave up after ${failedAttempts} attempts)`.slice(0, failureReasonLengthMax)
          : failureReasonOf(failure)
        const updated = yield* sql<{ nextAttemptAt: Date }>`UPDATE incoming_orders SET
            status = ${status},
            retry_count = ${failedAttempts},
            last_attempt_at = now(),
            next_attempt_at = now() + make_interval(secs => ${Duration.toMillis(delay) / 1000}),
            failure_reason = ${reason},
            updated_at = now()
          WHERE id = ${row.id}
          RETURNING next_attempt_at`
        if (status !== "retrying") {
          yield* audit.logAction({
            ...systemActor,
            action: status === "failed" ? "order.failed" : "order.manual_review",
            targetEntity: "incoming_order",
            targetId: row.id,
            details: { code: failure.code, reason, attempts: failedAttempts }
          })
          yield* outbox.enqueueOrderEvent({
            incomingOrderId: row.id,
            event: status === "failed" ? "order.failed" : "order.manual_review"
          })
        }
        const incomingOrderId = row.id
        switch (status) {
          case "retrying":
            return ProcessOutcome.Retrying({
              incomingOrderId,
              reason,
              nextAttemptAt: Option.fromNullable(updated[0]?.nextAttemptAt)
            })
          case "failed":
            return ProcessOutcome.Failed({ incomingOrderId, reason })
          case "manual_review":
            return ProcessOutcome.ManualReview({ incomingOrderId, reason })
        }
      })

    /** The separate transaction after a rolled-back attempt (SPEC §5.3). */
    const recordFailure = (incomingOrderId: number, failure: AttemptFailure) =>
      atomic(
        "order.recordFailure",
        Effect.gen(function*() {
          const rows = yield* sql`SELECT id, status, retry_count FROM incoming_orders
            WHERE id = ${incomingOrderId} FOR UPDATE`.pipe(Effect.flatMap(decodeRetryRows))
          const row = rows[0]
          // Someone else finished the order meanwhile (e.g. another worker after our lease ran out).
          if (row === undefined || (row.status !== "new" && row.status !== "retrying")) {
            return ProcessOutcome.Skipped({ incomingOrderId, reason: `status is ${row?.status ?? "missing"}` })
          }
          return yield* applyFailure(row, failure)
        })
      )

    // -------------------------------------------------------------------------------------------
    // The main transaction

    const lockOrder = (incomingOrderId: number) =>
      sql`SELECT i.id, i.store_id, i.direction, i.amount, i.currency, i.payment_method, i.bank_code, i.customer_id,
                 i.client_ip, i.status, i.retry_count,
                 (SELECT h.id FROM order_history h WHERE h.incoming_order_id = i.id) AS existing_order_id,
                 s.is_active AS store_active, s.crypto_currency, s.payin_commission_pct, s.payout_commission_pct,
                 s.processing_ttl_seconds, b.balance AS store_balance, b.frozen AS store_frozen
          FROM incoming_orders i
          JOIN merchant_stores s ON s.id = i.store_id
          LEFT JOIN balance_stores b ON b.store_id = i.store_id
          WHERE i.id = ${incomingOrderId}
          FOR UPDATE OF i`.pipe(
        Effect.flatMap(decodeLockedOrders),
        Effect.map((rows) => Option.fromNullable(rows[0]))
      )

    const storeCommissionPct = (order: LockedOrder) =>
      order.direction === "payin" ? order.payinCommissionPct : order.payoutCommissionPct

    const traderRewardPct = (order: LockedOrder, candidate: Candidate) =>
      order.direction === "payin" ? candidate.payinRewardPct : candidate.payoutRewardPct

    /** A and s at the current rate; independent of the trader (their reward only affects t). */
    const priceOrder = (order: LockedOrder, rate: BigDecimal.BigDecimal) =>
      Effect.gen(function*() {
        const amounts = computeOrderAmounts({
          amountFiat: order.amount,
          rate,
          storeCommissionPct: storeCommissionPct(order),
          traderRewardPct: zero
        })
        if (!BigDecimal.isPositive(amounts.amountCrypto)) {
          return yield* new ValidationError({
            field: "amount",
            message: `amount ${formatFiat(order.amount)} ${order.currency} is worth 0 ${order.cryptoCurrency} at rate ${
              formatPlain(rate)
            }`
          })
        }
        return amounts
      })

    /** PayOut: the store pays A + s; without that much available the order waits for a top-up. */
    const checkStoreCovers = (order: LockedOrder, amounts: OrderAmounts) =>
      Effect.gen(function*() {
        if (order.direction !== "payout") return
        if (order.storeBalance === null || order.storeFrozen === null) {
          return yield* new ConfigurationError({ message: `store ${order.storeId} has no balance account` })
        }
        const needed = holdAmount("payout", amounts).amount
        const available = BigDecimal.subtract(order.storeBalance, order.storeFrozen)
        if (BigDecimal.lessThan(available, needed)) {
          return yield* new InsufficientBalance({
            account: `store:${order.storeId}`,
            message: `store ${order.storeId} has ${formatCrypto(available)} ${order.cryptoCurrency} available, needs ${
              formatCrypto(needed)
            }`
          })
        }
      })

    // expires_at is the database's now() + the store's TTL, like every other timestamp of the order.
    const insertOrderHistory = (
      order: LockedOrder,
      candidate: Candidate,
      rate: BigDecimal.BigDecimal,
      amounts: OrderAmounts
    ) =>
      sql<{ id: number }>`INSERT INTO order_history (incoming_order_id, store_id, trader_id, requisite_id, direction,
            amount_fiat, fiat_currency, crypto_currency, exchange_rate, amount_crypto, store_commission_pct,
            store_commission_crypto, trader_reward_pct, trader_reward_crypto, status, expires_at)
          VALUES (${order.id}, ${order.storeId}, ${candidate.traderId}, ${candidate.requisiteId}, ${order.direction},
            ${formatFiat(order.amount)}, ${order.currency}, ${order.cryptoCurrency}, ${formatRate(rate)},
            ${formatCrypto(amounts.amountCrypto)}, ${formatPercent(storeCommissionPct(order))},
            ${formatCrypto(amounts.storeCommissionCrypto)}, ${formatPercent(traderRewardPct(order, candidate))},
            ${formatCrypto(amounts.traderRewardCrypto)}, 'assigned',
            now() + make_interval(secs => ${order.processingTtlSeconds}))
          RETURNING id`.pipe(Effect.map((rows) => rows[0]!.id))

    /**
     * The selector's `accept`: create the order and place its hold in a savepoint. A PayIn hold that
     * does not fit the trader's balance (taken by a concurrent order since the selector read it)
     * rolls back to the savepoint and lets the selector try the next requisite; a PayOut hold is on
     * the store, where another requisite would not help, so that failure ends the attempt.
     */
    const reserve = (
      order: LockedOrder,
      rate: BigDecimal.BigDecimal,
      assigned: { current: Assignment | undefined }
    ) =>
    (candidate: Candidate) =>
      Effect.gen(function*() {
        const amounts = computeOrderAmounts({
          amountFiat: order.amount,
          rate,
          storeCommissionPct: storeCommissionPct(order),
          traderRewardPct: traderRewardPct(order, candidate)
        })
        const orderId = yield* sql.withTransaction(
          Effect.gen(function*() {
            const orderId = yield* insertOrderHistory(order, candidate, rate, amounts)
            yield* balances.hold(orderId)
            return orderId
          })
        )
        assigned.current = { orderId, candidate, amounts }
        return true
      }).pipe(
        Effect.catchTag("InsufficientBalance", (error) =>
          order.direction === "payin"
            ? Effect.as(
              Effect.logInfo("trader balance taken meanwhile; trying the next requisite").pipe(
                Effect.annotateLogs({ requisiteId: candidate.requisiteId, reason: error.message })
              ),
              false
            )
            : Effect.fail(error))
      )

    /** Fraud DENY/REVIEW is decided here and committed with the decision the detector stored. */
    const fraudFailure = (decision: { readonly decision: string; readonly rule: string | null; readonly reason: string }) =>
      decision.decision === "DENY"
        ? Option.some<AttemptFailure>({
          kind: "permanent",
          code: "fraud_denied",
          message: `${decision.rule ?? "rule"}: ${decision.reason}`
        })
        : decision.decision === "REQUIRE_MANUAL_REVIEW"
        ? Option.some<AttemptFailure>({
          kind: "review",
          code: "fraud_review",
          message: `${decision.rule ?? "rule"}: ${decision.reason}`
        })
        : Option.none()

    const assign = (order: LockedOrder) =>
      Effect.gen(function*() {
        const rate = yield* referenceData.currentRate(order.currency, order.cryptoCurrency)
        const priced = yield* priceOrder(order, rate.rate)
        yield* checkStoreCovers(order, priced)
        const selectorOrder: SelectorOrder = {
          incomingOrderId: order.id,
          direction: order.direction,
          amountFiat: order.amount,
          currency: order.currency,
          paymentMethod: order.paymentMethod,
          bankCode: Option.fromNullable(order.bankCode),
          amountCrypto: priced.amountCrypto
        }
        const assigned: { current: Assignment | undefined } = { current: undefined }
        const candidate = yield* selector.findSuitableRequisite(selectorOrder, reserve(order, rate.rate, assigned))
        const assignment = assigned.current
        if (assignment === undefined || assignment.candidate.requisiteId !== candidate.requisiteId) {
          return yield* Effect.dieMessage(`order ${order.id}: selector returned a requisite that accept did not reserve`)
        }
        const [updated] = yield* sql<{ assignLatencyMs: number }>`UPDATE incoming_orders SET
            status = 'assigned', assigned_order_id = ${assignment.orderId}, last_attempt_at = now(),
            failure_reason = NULL, updated_at = now()
          WHERE id = ${order.id}
          RETURNING (extract(epoch FROM clock_timestamp() - created_at) * 1000)::float8 AS assign_latency_ms`
        yield* audit.logAction({
          ...systemActor,
          action: "order.assigned",
          targetEntity: "order",
          targetId: assignment.orderId,
          details: {
            incomingOrderId: order.id,
            requisiteId: candidate.requisiteId,
            traderId: candidate.traderId,
            exchangeRate: formatRate(rate.rate),
            rateSource: rate.source,
            amountCrypto: formatCrypto(assignment.amounts.amountCrypto),
            storeCommissionCrypto: formatCrypto(assignment.amounts.storeCommissionCrypto),
            traderRewardCrypto: formatCrypto(assignment.amounts.traderRewardCrypto)
          }
        })
        yield* outbox.enqueueOrderEvent({ incomingOrderId: order.id, event: "order.assigned" })
        return {
          outcome: ProcessOutcome.Assigned({
            incomingOrderId: order.id,
            orderId: assignment.orderId,
            requisiteId: candidate.requisiteId,
            traderId: candidate.traderId
          }),
          assignLatencyMs: Option.fromNullable(updated?.assignLatencyMs)
        }
      })

    /**
     * On PostgreSQL a stuck attempt is cut off (rolled back) after the timeout. Not on embedded
     * PGlite: interrupting a query there cancels it through a second connection, which the single
     * pooled connection held by this very transaction never frees — the interruption would hang.
     */
    const boundedAttempt = <A, E, R>(attempt: Effect.Effect<A, E, R>) =>
      mode.embedded ? attempt : attempt.pipe(
        Effect.timeoutFail({
          duration: mainTransactionTimeout,
          onTimeout: () =>
            new ProcessingTimeout({ message: `attempt took longer than ${Duration.format(mainTransactionTimeout)}` })
        })
      )

    const mainTransaction = (incomingOrderId: number) =>
      atomic(
        "order.process",
        Effect.gen(function*() {
          const locked = yield* lockOrder(incomingOrderId)
          const plain = (outcome: ProcessOutcome) => ({ outcome, assignLatencyMs: Option.none<number>() })
          if (Option.isNone(locked)) return plain(ProcessOutcome.Skipped({ incomingOrderId, reason: "not found" }))
          const order = locked.value
          if (order.existingOrderId !== null) {
            return plain(ProcessOutcome.AlreadyProcessed({ incomingOrderId, orderId: order.existingOrderId }))
          }
          if (order.status !== "new" && order.status !== "retrying") {
            return plain(ProcessOutcome.Skipped({ incomingOrderId, reason: `status is ${order.status}` }))
          }
          if (!order.storeActive) {
            return yield* new ValidationError({ field: "storeId", message: `store ${order.storeId} is not active` })
          }
          const decision = yield* fraud.checkIncomingOrder({
            incomingOrderId: order.id,
            storeId: order.storeId,
            amountFiat: order.amount,
            customerId: order.customerId,
            clientIp: order.clientIp
          })
          const denied = fraudFailure(decision)
          if (Option.isSome(denied)) {
            // Committed rather than rolled back: the detector's stored decision must survive (SPEC §5.11).
            return plain(yield* applyFailure(order, denied.value))
          }
          return yield* assign(order)
        }).pipe(boundedAttempt)
      )

    // -------------------------------------------------------------------------------------------

    /** Defects, SQL and decoding errors: nobody planned for them, so a person must hear about them. */
    const unexpected = (incomingOrderId: number, cause: Cause.Cause<unknown>) =>
      Effect.as(
        reporter.reportCriticalError(cause, { incomingOrderId, operation: "OrderProcessor.processIncomingOrder" }),
        { kind: "transient", code: "unexpected", message: describeUnexpected(cause) } satisfies AttemptFailure
      )

    const failureOfCause = (incomingOrderId: number, cause: Cause.Cause<MainError | SqlError.SqlError | ParseResult.ParseError>) =>
      Option.match(Cause.failureOption(cause), {
        onSome: (error) =>
          error instanceof SqlError.SqlError || ParseResult.isParseError(error)
            ? unexpected(incomingOrderId, cause)
            : Effect.succeed(classifyError(error)),
        onNone: () => unexpected(incomingOrderId, cause)
      })

    const observeFailure = (incomingOrderId: number, failure: AttemptFailure) =>
      Effect.gen(function*() {
        const log = failure.code === "rate_unavailable"
          // No rate means no order can be priced: an operator must fix the source (SPEC §5.6).
          ? Effect.logError("ALERT: exchange rate unavailable; order will retry").pipe(Effect.annotateLogs("alert", "rate_unavailable"))
          : Effect.logInfo("order attempt failed")
        yield* log.pipe(Effect.annotateLogs({ incomingOrderId, code: failure.code, kind: failure.kind, reason: failure.message }))
      })

    const recordOutcomeMetrics = (outcome: ProcessOutcome, startedAtMs: number, assignLatency: Option.Option<number>) =>
      Effect.gen(function*() {
        const label = outcomeLabel(outcome)
        yield* Metric.increment(
          Metric.tagged(Metric.tagged(ordersProcessed, "outcome", label.outcome), "reason", label.reason)
        )
        yield* Metric.update(processingDurationMs, (yield* Clock.currentTimeMillis) - startedAtMs)
        if (Option.isSome(assignLatency)) yield* Metric.update(assignLatencyMs, assignLatency.value)
      })

    /**
     * Processes one incoming order (SPEC §5.3). Never fails: every way it can go wrong ends in an
     * outcome, and the order's row says when it will be tried again. Interruption rolls back and
     * records nothing; the worker's claim lease brings the order back.
     */
    const processIncomingOrder = Effect.fn("OrderProcessor.processIncomingOrder")(function*(incomingOrderId: number) {
      yield* Effect.annotateCurrentSpan({ incomingOrderId })
      const startedAtMs = yield* Clock.currentTimeMillis
      const exit = yield* Effect.exit(mainTransaction(incomingOrderId))
      if (Exit.isSuccess(exit)) {
        const { outcome, assignLatencyMs } = exit.value
        if (outcome._tag === "Failed" || outcome._tag === "ManualReview") {
          yield* reporter.recordOrderFailure(reasonCode(outcome.reason))
        }
        yield* recordOutcomeMetrics(outcome, startedAtMs, assignLatencyMs)
        return outcome
      }
      if (Cause.isInterruptedOnly(exit.cause)) return yield* Effect.interrupt
      const failure = yield* failureOfCause(incomingOrderId, exit.cause)
      yield* observeFailure(incomingOrderId, failure)
      const recorded = yield* Effect.exit(recordFailure(incomingOrderId, failure))
      if (Exit.isFailure(recorded)) {
        if (Cause.isInterruptedOnly(recorded.cause)) return yield* Effect.interrupt
        // The claim lease (or next_attempt_at as it was) brings the order back; nothing is lost.
        yield* reporter.reportCriticalError(recorded.cause, {
          incomingOrderId,
          operation: "OrderProcessor.recordFailure",
          failureCode: failure.code
        })
        const outcome = ProcessOutcome.Retrying({
          incomingOrderId,
          reason: `${failureReasonOf(failure)} (not recorded)`,
          nextAttemptAt: Option.none()
        })
        yield* recordOutcomeMetrics(outcome, startedAtMs, Option.none())
        return outcome
      }
      // Only final failures feed the failed-order alert: retries are the normal "no trader free yet".
      if (recorded.value._tag === "Failed" || recorded.value._tag === "ManualReview") {
        yield* reporter.recordOrderFailure(failure.code)
      }
      yield* recordOutcomeMetrics(recorded.value, startedAtMs, Option.none())
      return recorded.value
    }, (effect, incomingOrderId) => Effect.annotateLogs(effect, { service: "OrderProcessor", incomingOrderId }))

    // -------------------------------------------------------------------------------------------
    // Dead letters (SPEC §5.4): operators list failed/held orders and send them back to the queue.

    const listIncomingOrders = Effect.fn("OrderProcessor.listIncomingOrders")(function*(query: {
      readonly status?: IncomingOrderStatus | undefined
      readonly limit?: number | undefined
      readonly offset?: number | undefined
    }) {
      const limit = Math.min(Math.max(1, Math.trunc(query.limit ?? 50)), listLimitMax)
      const offset = Math.max(0, Math.trunc(query.offset ?? 0))
      const filter = query.status === undefined ? sql`true` : sql`status = ${query.status}`
      const rows = yield* sql`SELECT id, store_id, merchant_order_id, direction, amount, currency, payment_method, bank_code,
                 status, retry_count, last_attempt_at, next_attempt_at, failure_reason, assigned_order_id, created_at
          FROM incoming_orders WHERE ${filter}
          ORDER BY created_at DESC, id DESC LIMIT ${limit} OFFSET ${offset}`.pipe(Effect.flatMap(decodeItems))
      const [count] = yield* sql<{ total: number }>`SELECT count(*)::int AS total FROM incoming_orders WHERE ${filter}`
      return { items: rows.map(incomingOrderView), total: count?.total ?? 0 }
    }, dieOnInfrastructure)

    const retryIncomingOrder = Effect.fn("OrderProcessor.retryIncomingOrder")(function*(
      incomingOrderId: number,
      actor: UserPrincipal,
      ipAddress: string | null = null
    ) {
      return yield* atomic(
        "order.retryByAdmin",
        Effect.gen(function*() {
          const rows = yield* sql`SELECT id, status, retry_count FROM incoming_orders WHERE id = ${incomingOrderId}
            FOR UPDATE`.pipe(Effect.flatMap(decodeRetryRows))
          const row = rows[0]
          if (row === undefined) {
            return yield* new NotFound({ entity: "incoming_order", message: `incoming order ${incomingOrderId} not found` })
          }
          if (row.status !== "failed" && row.status !== "manual_review") {
            return yield* new InvalidTransition({
              from: row.status,
              to: "retrying",
              message: `only failed or manual_review orders can be retried; this one is ${row.status}`
            })
          }
          const updated = yield* sql`UPDATE incoming_orders SET status = 'retrying', retry_count = 0,
              next_attempt_at = now(), updated_at = now()
            WHERE id = ${incomingOrderId}
            RETURNING id, store_id, merchant_order_id, direction, amount, currency, payment_method, bank_code,
                      status, retry_count, last_attempt_at, next_attempt_at, failure_reason, assigned_order_id, created_at`
            .pipe(Effect.flatMap(decodeItems))
          yield* audit.logAction({
            action: "admin.incoming_order_retry",
            userId: actor.userId,
            userRole: actor.role,
            targetEntity: "incoming_order",
            targetId: incomingOrderId,
            details: { previousStatus: row.status, previousRetryCount: row.retryCount },
            ipAddress
          })
          yield* wakeup.notifyNewOrder(incomingOrderId)
          return incomingOrderView(updated[0]!)
        })
      )
    }, dieOnInfrastructure)

    return { processIncomingOrder, listIncomingOrders, retryIncomingOrder } as const
  }),
  dependencies: [
    RequisiteSelector.Default,
    BalanceManager.Default,
    ReferenceData.Default,
    AuditLogger.Default,
    CallbackOutbox.Default
  ]
}) {}

const describeUnexpected = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  return text.slice(0, 300)
}
