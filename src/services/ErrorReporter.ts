/**
 * ErrorReporter (SPEC §5.7): where unexpected failures and operational alarms go.
 *
 * Every report is a structured error log (always) and, when `ALERT_WEBHOOK_URL` is set, a JSON POST
 * to that webhook. Reporting never fails and never blocks its caller: a broken sink is itself only
 * logged, and webhook deliveries run on their own fibers with a bound on how many are in flight.
 */
import { BigDecimal, Cause, Clock, Context, Duration, Effect, Layer, Metric, Option, Redacted, Ref } from "effect"
import { AppConfig } from "../layers/Config.js"

export type AlertKind = "critical_error" | "failed_orders"

/** What the sinks receive; `context` is already redacted. */
export interface Alert {
  readonly kind: AlertKind
  readonly message: string
  readonly context: Record<string, unknown>
  readonly at: string
}

const webhookTimeout = Duration.seconds(3)
// A storm of errors must not turn into a storm of open sockets: extra alerts are dropped (and logged).
const webhookDeliveriesInFlightMax = 8
const failureReasonLengthMax = 200
const failureReasonsInAlertMax = 10

/** Exported for tests and dashboards. */
export const criticalErrorsTotal = Metric.counter("jivapay_critical_errors_total", {
  description: "Critical errors reported to the ErrorReporter"
})

// ---------------------------------------------------------------------------------------------
// Redaction: contexts are built by callers from requests and rows; secrets must never reach a sink.

const secretKeyPattern = /password|passphrase|passwd|^pass$|token|api[-_]?key|secret|authorization|cookie|credential|private[-_]?key|dsn/i
const redactedMarker = "[REDACTED]"
const redactionDepthMax = 6
const collectionItemsMax = 50
const stringLengthMax = 2_000

export const isSecretKey = (key: string): boolean => secretKeyPattern.test(key)

const truncate = (text: string, lengthMax: number) => (text.length > lengthMax ? `${text.slice(0, lengthMax)}…` : text)

const redactValue = (value: unknown, depth: number): unknown => {
  if (value === null || value === undefined || typeof value === "boolean" || typeof value === "number") return value
  if (typeof value === "string") return truncate(value, stringLengthMax)
  if (typeof value === "bigint") return value.toString()
  if (Redacted.isRedacted(value)) return redactedMarker
  if (BigDecimal.isBigDecimal(value)) return BigDecimal.format(value)
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? "Invalid Date" : value.toISOString()
  if (value instanceof Error) return { name: value.name, message: truncate(value.message, stringLengthMax) }
  if (typeof value !== "object") return `[${typeof value}]`
  if (depth >= redactionDepthMax) return "[nested too deep]"
  if (Array.isArray(value)) return value.slice(0, collectionItemsMax).map((item) => redactValue(item, depth + 1))
  return redactRecord(value as Record<string, unknown>, depth + 1)
}

const redactRecord = (record: Record<string, unknown>, depth: number): Record<string, unknown> =>
  Object.fromEntries(
    Object.entries(record).slice(0, collectionItemsMax).map(([key, value]) => [
      key,
      isSecretKey(key) ? redactedMarker : redactValue(value, depth)
    ])
  )

/** A copy of `context` safe to log or send: secret-named keys masked at any depth, sizes bounded. */
export const redactContext = (context: Record<string, unknown>): Record<string, unknown> => redactRecord(context, 0)

// ---------------------------------------------------------------------------------------------
// Describing a failure in one line (the full cause goes to the log only).

const describeError = (error: unknown): string => {
  if (error instanceof Error) return `${error.name}: ${error.message}`
  if (typeof error === "object" && error !== null && "_tag" in error) {
    const tagged = error as { readonly _tag: unknown; readonly message?: unknown }
    return typeof tagged.message === "string" ? `${String(tagged._tag)}: ${tagged.message}` : String(tagged._tag)
  }
  return String(error)
}

export const describeCause = (cause: unknown): string => {
  if (!Cause.isCause(cause)) return truncate(describeError(cause), stringLengthMax)
  if (Cause.isInterruptedOnly(cause)) return "interrupted"
  return truncate(describeError(Cause.squash(cause)), stringLengthMax)
}

// ---------------------------------------------------------------------------------------------
// Failed-order rate: a sliding window of the most recent failures, bounded by the threshold.

interface FailureWindowSettings {
  readonly threshold: number
  readonly windowMs: number
}

interface RecordedFailure {
  readonly atMs: number
  readonly reason: string
}

/** Failures per reason among those in the window, the most frequent first. */
const summarizeReasons = (failures: ReadonlyArray<RecordedFailure>) => {
  const counts = new Map<string, number>()
  for (const failure of failures) counts.set(failure.reason, (counts.get(failure.reason) ?? 0) + 1)
  return [...counts.entries()]
    .sort((left, right) => right[1] - left[1])
    .slice(0, failureReasonsInAlertMax)
    .map(([reason, count]) => ({ reason, count }))
}

/**
 * Mutated only inside `Effect.sync`: one synchronous block per failure, so concurrent fibers never
 * interleave. Only the newest `threshold + 1` failures are kept: that is all "more than threshold
 * within the window" needs to know.
 */
class FailureWindow {
  private failures: Array<RecordedFailure> = []
  private lastAlertAtMs: number | undefined = undefined

  constructor(private readonly settings: FailureWindowSettings) {}

  /** Registers one failure; returns the alert's context when this failure crosses the threshold. */
  record(atMs: number, reason: string): Record<string, unknown> | undefined {
    const windowStartMs = atMs - this.settings.windowMs
    this.failures = this.failures.filter((failure) => failure.atMs > windowStartMs)
    this.failures.push({ atMs, reason: truncate(reason, failureReasonLengthMax) })
    if (this.failures.length > this.settings.threshold + 1) this.failures.shift()
    if (this.failures.length <= this.settings.threshold) return undefined
    if (this.lastAlertAtMs !== undefined && atMs - this.lastAlertAtMs < this.settings.windowMs) return undefined
    this.lastAlertAtMs = atMs
    return {
      // Only threshold + 1 failures are kept, so this is a lower bound.
      failuresInWindowAtLeast: this.failures.length,
      threshold: this.settings.threshold,
      windowMs: this.settings.windowMs,
      reasons: summarizeReasons(this.failures)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Webhook sink

const postAlert = (url: string, alert: Alert) =>
  Effect.tryPromise({
    try: async (signal) => {
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": "jivapay-alerts" },
        // `text` makes the payload readable by chat webhooks (Slack, Mattermost) as is.
        body: JSON.stringify({ source: "jivapay", text: `[jivapay] ${alert.kind}: ${alert.message}`, ...alert }),
        signal
      })
      // The body is not needed, but reading it frees the connection.
      await response.arrayBuffer().catch(() => undefined)
      if (!response.ok) throw new Error(`alert webhook answered HTTP ${response.status}`)
    },
    catch: (cause) => (cause instanceof Error ? cause : new Error(String(cause)))
  }).pipe(
    Effect.timeoutFail({ duration: webhookTimeout, onTimeout: () => new Error("alert webhook timed out after 3 s") })
  )

// ---------------------------------------------------------------------------------------------
// Test double

const recordedReportsMax = 1_000

/** One call recorded by `ErrorReporter.Test`. */
export interface RecordedReport {
  readonly kind: "critical_error" | "order_failure"
  readonly message: string
  readonly context: Record<string, unknown>
}

/** The calls `ErrorReporter.Test` recorded, oldest first (the newest 1000). */
export class ReportedErrors extends Context.Tag("ReportedErrors")<ReportedErrors, {
  readonly all: Effect.Effect<ReadonlyArray<RecordedReport>>
  readonly clear: Effect.Effect<void>
}>() {}

// ---------------------------------------------------------------------------------------------

export class ErrorReporter extends Effect.Service<ErrorReporter>()("ErrorReporter", {
  scoped: Effect.gen(function*() {
    const config = yield* AppConfig
    // Deliveries belong to the service's scope: shutting the app down interrupts pending ones.
    const scope = yield* Effect.scope
    const webhookPermits = yield* Effect.makeSemaphore(webhookDeliveriesInFlightMax)
    const failureWindow = new FailureWindow({
      threshold: config.failedOrderAlertThreshold,
      windowMs: Duration.toMillis(config.failedOrderAlertWindow)
    })

    const deliverToWebhook = (url: string, alert: Alert) =>
      webhookPermits.withPermitsIfAvailable(1)(postAlert(url, alert)).pipe(
        Effect.flatMap(Option.match({
          onNone: () => Effect.logWarning("alert webhook busy; alert dropped (it is in the error log)"),
          onSome: () => Effect.logDebug("alert delivered to webhook")
        })),
        Effect.catchAll((error) => Effect.logWarning("alert webhook failed", error.message)),
        Effect.annotateLogs({ alertKind: alert.kind })
      )

    /** Log always; webhook when configured, on a fiber of its own so the caller never waits for it. */
    const dispatch = (alert: Alert, cause: Option.Option<Cause.Cause<unknown>>) =>
      Effect.gen(function*() {
        const logged = Option.match(cause, {
          onNone: () => Effect.logError(alert.message),
          onSome: (failure) => Effect.logError(alert.message, failure)
        })
        yield* logged.pipe(Effect.annotateLogs({ alertKind: alert.kind, alertContext: alert.context }))
        if (Option.isSome(config.alertWebhookUrl)) {
          yield* Effect.forkIn(deliverToWebhook(config.alertWebhookUrl.value, alert), scope)
        }
      })

    const nowIso = Effect.map(Clock.currentTimeMillis, (nowMs) => new Date(nowMs).toISOString())

    // A reporter that throws would hide the error it was asked to report; its own defects are only logged.
    const neverFail = <R>(effect: Effect.Effect<void, never, R>) =>
      Effect.catchAllDefect(effect, (defect) => Effect.logWarning("ErrorReporter failed while reporting", defect))

    const reportCriticalError = Effect.fn("ErrorReporter.reportCriticalError")(
      function*(cause: Cause.Cause<unknown> | unknown, context: Record<string, unknown>) {
        yield* Metric.increment(criticalErrorsTotal)
        const alert: Alert = {
          kind: "critical_error",
          message: `critical error: ${describeCause(cause)}`,
          context: redactContext(context),
          at: yield* nowIso
        }
        // A plain error becomes a defect cause so that the log keeps its stack trace.
        yield* dispatch(alert, Option.some(Cause.isCause(cause) ? cause : Cause.die(cause)))
      },
      neverFail
    )

    const recordOrderFailure = Effect.fn("ErrorReporter.recordOrderFailure")(
      function*(reason: string) {
        const nowMs = yield* Clock.currentTimeMillis
        const alertContext = yield* Effect.sync(() => failureWindow.record(nowMs, reason))
        if (alertContext === undefined) return
        const alert: Alert = {
          kind: "failed_orders",
          message: `more than ${config.failedOrderAlertThreshold} failed orders within ${
            Duration.format(config.failedOrderAlertWindow)
          }`,
          context: redactContext(alertContext),
          at: yield* nowIso
        }
        yield* dispatch(alert, Option.none())
      },
      neverFail
    )

    return { reportCriticalError, recordOrderFailure } as const
  })
}) {
  /**
   * For other services' tests: records every call instead of logging or sending anything. Read them
   * through `ReportedErrors`.
   */
  static readonly Test: Layer.Layer<ErrorReporter | ReportedErrors> = Layer.effectContext(
    Effect.gen(function*() {
      const reports = yield* Ref.make<ReadonlyArray<RecordedReport>>([])
      const record = (report: RecordedReport) =>
        Ref.update(reports, (all) => [...all, report].slice(-recordedReportsMax))
      const reporter = ErrorReporter.make({
        reportCriticalError: (cause, context) =>
          record({ kind: "critical_error", message: describeCause(cause), context: redactContext(context) }),
        recordOrderFailure: (reason) => record({ kind: "order_failure", message: reason, context: {} })
      })
      return Context.make(ErrorReporter, reporter).pipe(
        Context.add(ReportedErrors, { all: Ref.get(reports), clear: Ref.set(reports, []) })
      )
    })
  )
}
