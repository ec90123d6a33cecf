import { expect, layer } from "@effect/vitest"
import { Context, Duration, Effect, HashMap, Layer, Logger, Metric, Option, Redacted } from "effect"
import { createServer, type IncomingMessage } from "node:http"
import type { AddressInfo } from "node:net"
import { AppConfig } from "../../src/layers/Config.js"
import {
  criticalErrorsTotal,
  describeCause,
  ErrorReporter,
  redactContext,
  ReportedErrors
} from "../../src/services/ErrorReporter.js"

// ---------------------------------------------------------------------------------------------
// A local webhook receiver whose answer each test chooses.

type ReceiverMode = "ok" | "fail" | "hang"

interface Receiver {
  readonly url: string
  readonly received: Array<Record<string, any>>
  setMode(mode: ReceiverMode): void
  reset(): void
}

class WebhookReceiver extends Context.Tag("WebhookReceiver")<WebhookReceiver, Receiver>() {}

const readBody = (request: IncomingMessage) =>
  new Promise<string>((resolve) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
  })

const WebhookReceiverLive = Layer.scoped(
  WebhookReceiver,
  Effect.acquireRelease(
    Effect.promise(() => {
      let mode: ReceiverMode = "ok"
      const received: Array<Record<string, any>> = []
      const server = createServer(async (request, response) => {
        const body = await readBody(request)
        received.push({ ...JSON.parse(body), contentType: request.headers["content-type"] })
        if (mode === "hang") return // never answers: the reporter's 3 s timeout must end it
        response.writeHead(mode === "ok" ? 204 : 500).end()
      })
      return new Promise<{ server: typeof server; receiver: Receiver }>((resolve) =>
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as AddressInfo
          resolve({
            server,
            receiver: {
              url: `http://127.0.0.1:${port}/alerts`,
              received,
              setMode: (next) => {
                mode = next
              },
              reset: () => {
                received.length = 0
                mode = "ok"
              }
            }
          })
        })
      )
    }),
    ({ server }) =>
      Effect.promise(() => {
        server.closeAllConnections()
        return new Promise<void>((resolve) => server.close(() => resolve()))
      })
  ).pipe(Effect.map(({ receiver }) => receiver))
)

const alertWindow = Duration.millis(800)

const ReporterWithWebhook = Layer.unwrapEffect(Effect.map(WebhookReceiver, (receiver) =>
  ErrorReporter.Default.pipe(Layer.provide(AppConfig.layerWith({
    alertWebhookUrl: Option.some(receiver.url),
    failedOrderAlertThreshold: 3,
    failedOrderAlertWindow: alertWindow
  }))))).pipe(Layer.provideMerge(WebhookReceiverLive))

// ---------------------------------------------------------------------------------------------
// Log capture: every line the effect (and fibers it forks) writes, as text with its annotations.

const captureLogs = <A, E, R>(effect: Effect.Effect<A, E, R>, lines: Array<string>) => {
  const capture = Logger.make(({ annotations, cause, logLevel, message }) => {
    const messages = Array.isArray(message) ? message : [message]
    lines.push(JSON.stringify({
      level: logLevel.label,
      message: messages.map(String).join(" "),
      annotations: Object.fromEntries(HashMap.toEntries(annotations)),
      cause: String(cause)
    }))
  })
  return Effect.provide(effect, Logger.replace(Logger.defaultLogger, capture))
}

/** Waits (live clock) until `condition` holds, at most `timeoutMs`. */
const eventually = (condition: () => boolean, timeoutMs = 3_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (!condition() && Date.now() < deadline) yield* Effect.sleep("20 millis")
    expect(condition()).toBe(true)
  })

const secretsIn = (text: string) => ["hunter2", "tok-123", "key-abc", "s3cr3t", "Bearer xyz", "cookie-v"].filter((secret) => text.includes(secret))

// ---------------------------------------------------------------------------------------------

layer(ReporterWithWebhook, { excludeTestServices: true })("ErrorReporter with a webhook", (it) => {
  it.effect("redacts secret-named keys at any depth and keeps the rest", () =>
    Effect.sync(() => {
      const redacted = redactContext({
        password: "hunter2",
        orderId: 42,
        headers: { Authorization: "Bearer xyz", cookie: "cookie-v", accept: "json" },
        store: { apiKey: "key-abc", api_key: "key-abc", secretKey: "s3cr3t", name: "shop" },
        sessions: [{ token: "tok-123", userId: 7 }],
        databaseUrl: Redacted.make("postgres://u:hunter2@h/db"),
        amount: 10n
      })
      expect(redacted).toEqual({
        password: "[REDACTED]",
        orderId: 42,
        headers: { Authorization: "[REDACTED]", cookie: "[REDACTED]", accept: "json" },
        store: { apiKey: "[REDACTED]", api_key: "[REDACTED]", secretKey: "[REDACTED]", name: "shop" },
        sessions: [{ token: "[REDACTED]", userId: 7 }],
        databaseUrl: "[REDACTED]",
        amount: "10"
      })
      expect(describeCause(new Error("boom"))).toBe("Error: boom")
    }))

  it.effect("logs a structured error without secrets and POSTs the alert to the webhook", () =>
    Effect.gen(function*() {
      const receiver = yield* WebhookReceiver
      receiver.reset()
      const reporter = yield* ErrorReporter
      const before = (yield* Metric.value(criticalErrorsTotal)).count
      const lines: Array<string> = []
      yield* captureLogs(
        reporter.reportCriticalError(new Error("database exploded"), {
          incomingOrderId: 17,
          password: "hunter2",
          request: { headers: { authorization: "Bearer xyz" } }
        }),
        lines
      )
      yield* eventually(() => receiver.received.length === 1)
      const alert = receiver.received[0]!
      expect(alert.contentType).toBe("application/json")
      expect(alert.source).toBe("jivapay")
      expect(alert.kind).toBe("critical_error")
      expect(alert.message).toContain("database exploded")
      expect(alert.context).toEqual({
        incomingOrderId: 17,
        password: "[REDACTED]",
        request: { headers: { authorization: "[REDACTED]" } }
      })
      expect(secretsIn(JSON.stringify(alert))).toEqual([])
      const errorLines = lines.filter((line) => line.includes("\"level\":\"ERROR\""))
      expect(errorLines).toHaveLength(1)
      expect(errorLines[0]).toContain("database exploded")
      expect(errorLines[0]).toContain("incomingOrderId")
      expect(secretsIn(lines.join("\n"))).toEqual([])
      expect((yield* Metric.value(criticalErrorsTotal)).count).toBe(before + 1)
    }))

  it.effect("a failing or hanging webhook neither fails nor delays the caller; the failure is logged", () =>
    Effect.gen(function*() {
      const receiver = yield* WebhookReceiver
      const reporter = yield* ErrorReporter
      receiver.reset()
      receiver.setMode("fail")
      const lines: Array<string> = []
      yield* captureLogs(reporter.reportCriticalError("plain string failure", { step: "one" }), lines)
      yield* eventually(() => lines.some((line) => line.includes("alert webhook failed") && line.includes("HTTP 500")))

      receiver.setMode("hang")
      const startedAt = Date.now()
      yield* captureLogs(reporter.reportCriticalError(new Error("slow sink"), { step: "two" }), lines)
      expect(Date.now() - startedAt).toBeLessThan(500)
      yield* eventually(() => lines.some((line) => line.includes("timed out after 3 s")), 5_000)
      expect(receiver.received.map((alert) => alert.context.step)).toEqual(["one", "two"])
    }))

  it.effect("more failed orders than the threshold within the window alert once per window", () =>
    Effect.gen(function*() {
      const receiver = yield* WebhookReceiver
      const reporter = yield* ErrorReporter
      receiver.reset()
      const failedOrderAlerts = () => receiver.received.filter((alert) => alert.kind === "failed_orders")

      // Threshold 3: the fourth failure within 800 ms crosses it.
      for (const reason of ["requisite_not_found", "requisite_not_found", "rate_unavailable"]) {
        yield* reporter.recordOrderFailure(reason)
      }
      yield* Effect.sleep("100 millis")
      expect(failedOrderAlerts()).toHaveLength(0)
      yield* reporter.recordOrderFailure("requisite_not_found")
      yield* eventually(() => failedOrderAlerts().length === 1)
      const alert = failedOrderAlerts()[0]!
      expect(alert.context.threshold).toBe(3)
      expect(alert.context.reasons[0]).toEqual({ reason: "requisite_not_found", count: 3 })

      // Still the same window: more failures, no second alert.
      for (let index = 0; index < 6; index++) yield* reporter.recordOrderFailure("requisite_not_found")
      yield* Effect.sleep("200 millis")
      expect(failedOrderAlerts()).toHaveLength(1)

      // A new window: old failures have slid out, so it takes four new ones to alert again.
      yield* Effect.sleep(Duration.sum(alertWindow, Duration.millis(100)))
      for (let index = 0; index < 3; index++) yield* reporter.recordOrderFailure("limit_exceeded")
      yield* Effect.sleep("100 millis")
      expect(failedOrderAlerts()).toHaveLength(1)
      yield* reporter.recordOrderFailure("limit_exceeded")
      yield* eventually(() => failedOrderAlerts().length === 2)
    }))
})

layer(
  ErrorReporter.Default.pipe(Layer.provide(AppConfig.layerWith({ alertWebhookUrl: Option.some("http://127.0.0.1:1/alerts") }))),
  { excludeTestServices: true }
)("ErrorReporter with an unreachable webhook", (it) => {
  it.effect("the caller succeeds and the delivery failure is logged", () =>
    Effect.gen(function*() {
      const reporter = yield* ErrorReporter
      const lines: Array<string> = []
      yield* captureLogs(reporter.reportCriticalError(new Error("nobody listens"), {}), lines)
      yield* eventually(() => lines.some((line) => line.includes("alert webhook failed")))
    }))
})

layer(ErrorReporter.Test, { excludeTestServices: true })("ErrorReporter.Test", (it) => {
  it.effect("records reports (redacted) for other services' tests", () =>
    Effect.gen(function*() {
      const reporter = yield* ErrorReporter
      const reported = yield* ReportedErrors
      yield* reporter.reportCriticalError(new Error("boom"), { secret: "s3cr3t", orderId: 1 })
      yield* reporter.recordOrderFailure("requisite_not_found")
      expect(yield* reported.all).toEqual([
        { kind: "critical_error", message: "Error: boom", context: { secret: "[REDACTED]", orderId: 1 } },
        { kind: "order_failure", message: "requisite_not_found", context: {} }
      ])
      yield* reported.clear
      expect(yield* reported.all).toEqual([])
    }))
})
