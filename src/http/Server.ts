import {
  HttpApiBuilder,
  HttpApiSwagger,
  HttpIncomingMessage,
  HttpMiddleware,
  HttpServer,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer, Metric, MetricBoundaries, Option } from "effect"
import { createServer } from "node:http"
import { AppConfig } from "../layers/Config.js"
import { AdminService } from "../services/AdminService.js"
import { AuthService } from "../services/AuthService.js"
import { BalanceManager } from "../services/BalanceManager.js"
import { Reconciliation } from "../services/Reconciliation.js"
import { FraudDetector } from "../services/FraudDetector.js"
import { OrderService } from "../services/OrderService.js"
import { OrderStatusManager } from "../services/OrderStatusManager.js"
import { ReferenceData } from "../services/ReferenceData.js"
import { RequisiteService } from "../services/RequisiteService.js"
import { JivaPayApi } from "./Api.js"
import {
  AdminHandlers,
  AuthenticationLive,
  AuthHandlers,
  OpsHandlers,
  RequestGuardsLive,
  StoreAuthenticationLive,
  TraderHandlers
} from "./Handlers.js"
import { DeadLetterHandlers } from "./DeadLetterHttp.js"
import { FraudHandlers } from "./FraudHttp.js"
import { LedgerHandlers } from "./LedgerHttp.js"
import { LifecycleHandlers } from "./LifecycleHttp.js"
import { MerchantHandlers } from "./MerchantHttp.js"
import { renderPrometheus } from "./Prometheus.js"

const httpRequests = Metric.counter("jivapay_http_requests_total", {
  description: "HTTP requests by method and status class"
})
const httpLatencyMs = Metric.histogram(
  "jivapay_http_request_duration_ms",
  MetricBoundaries.exponential({ start: 1, factor: 2, count: 14 }),
  "HTTP request latency in milliseconds"
)

const MetricsRoute = HttpApiBuilder.Router.use((router) =>
  router.get("/metrics", Effect.map(renderPrometheus, (body) =>
    HttpServerResponse.text(body, { contentType: "text/plain; version=0.0.4; charset=utf-8" })))
)

/** Counts and times every request; the status class keeps the label set small. */
const measured = HttpMiddleware.make((app) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const startedAt = Date.now()
    const response = yield* app
    const tagged = (metric: typeof httpRequests) =>
      metric.pipe(Metric.tagged("method", request.method), Metric.tagged("status", `${Math.floor(response.status / 100)}xx`))
    yield* Metric.increment(tagged(httpRequests))
    yield* Metric.update(httpLatencyMs, Date.now() - startedAt)
    return response
  })
)

export const ApiLive = HttpApiBuilder.api(JivaPayApi).pipe(
  Layer.provide([OpsHandlers, AuthHandlers, AdminHandlers, TraderHandlers, MerchantHandlers, LedgerHandlers, FraudHandlers, LifecycleHandlers, DeadLetterHandlers]),
  Layer.provide([AuthenticationLive, StoreAuthenticationLive, RequestGuardsLive]),
  Layer.provide([
    AuthService.Default,
    AdminService.Default,
    RequisiteService.Default,
    ReferenceData.Default,
    FraudDetector.Default,
    BalanceManager.Default,
    Reconciliation.Default,
    OrderService.Default,
    OrderStatusManager.Default
  ])
)

/** The HTTP application: API, OpenAPI UI at /docs, /metrics; bodies larger than MAX_BODY_BYTES are refused. */
export const HttpAppLive = Layer.unwrapEffect(Effect.map(AppConfig, (config) =>
  HttpApiBuilder.serve((app) =>
    measured(app).pipe(
      HttpMiddleware.withLoggerDisabled,
      HttpIncomingMessage.withMaxBodySize(Option.some(config.maxBodyBytes))
    )
  ).pipe(
    Layer.provide(HttpApiSwagger.layer({ path: "/docs" })),
    Layer.provide(MetricsRoute),
    Layer.provide(ApiLive),
    HttpServer.withLogAddress
  )))

export const NodeServerLive = Layer.unwrapEffect(Effect.map(AppConfig, (config) =>
  NodeHttpServer.layer(createServer, { port: config.port, host: config.host })))
