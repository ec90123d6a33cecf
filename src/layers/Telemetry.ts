import { NodeSdk } from "@effect/opentelemetry"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect, Layer, Logger, LogLevel, Option } from "effect"
import { AppConfig } from "./Config.js"

const logLevels: Record<string, LogLevel.LogLevel> = {
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None
}

/** Structured JSON logs at LOG_LEVEL. */
export const LoggingLive = Layer.unwrapEffect(Effect.map(AppConfig, (config) =>
  Layer.merge(
    Logger.replace(Logger.defaultLogger, Logger.withConsoleLog(Logger.jsonLogger)),
    Logger.minimumLogLevel(logLevels[config.logLevel.toLowerCase()] ?? LogLevel.Info)
  )))

/** Traces over OTLP/HTTP, only when OTEL_EXPORTER_OTLP_ENDPOINT is set; otherwise spans stay in-process. */
export const TracingLive = Layer.unwrapEffect(Effect.map(AppConfig, (config) =>
  Option.match(config.otlpEndpoint, {
    onNone: () => Layer.empty,
    onSome: (endpoint) =>
      NodeSdk.layer(() => ({
        resource: { serviceName: "jivapay" },
        spanProcessor: new BatchSpanProcessor(
          new OTLPTraceExporter({ url: `${endpoint.replace(/\/$/, "")}/v1/traces` })
        )
      }))
  })))

export const TelemetryLive = Layer.merge(LoggingLive, TracingLive)
