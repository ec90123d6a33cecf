import { HttpApiBuilder, HttpApiError, HttpServerError, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Cause, Effect, Layer, Option, Redacted } from "effect"
import { Forbidden, ServiceUnavailable } from "../domain/Errors.js"
import { CurrentUser } from "../domain/Principal.js"
import { AppConfig } from "../layers/Config.js"
import { KeyValue } from "../layers/KeyValue.js"
import { AdminService } from "../services/AdminService.js"
import { AuthService, requireRole } from "../services/AuthService.js"
import { ReferenceData, rateView } from "../services/ReferenceData.js"
import { RequisiteService } from "../services/RequisiteService.js"
import { JivaPayApi } from "./Api.js"
import { currentClientIp } from "./ClientIp.js"
import { Authentication, StoreAuthentication } from "./Security.js"

export const AuthenticationLive = Layer.effect(
  Authentication,
  Effect.map(AuthService, (auth) => ({ bearer: (token) => auth.authenticate(Redacted.value(token)) }))
)

export const StoreAuthenticationLive = Layer.effect(
  StoreAuthentication,
  Effect.map(AuthService, (auth) => ({ apiKey: (key) => auth.authenticateStore(Redacted.value(key)) }))
)

const READY_TIMEOUT = "2 seconds"

const errorResponse = (status: number, body: Record<string, unknown>) => HttpServerResponse.unsafeJson(body, { status })

/** "settings.minAmount: must be ..." for each issue, so the message itself names the field. */
const describeDecodeError = (error: HttpApiError.HttpApiDecodeError) => {
  const fields = error.issues.map((issue) => issue.path.map(String).join("."))
  const message = error.issues.map((issue, index) => `${fields[index] || "body"}: ${issue.message}`).join("; ")
  return { _tag: error._tag, field: fields[0] || undefined, message: message || error.message, issues: error.issues }
}

/**
 * API-wide guards, in front of every handler: a body declared larger than MAX_BODY_BYTES is refused
 * with 413 before a byte of it is read (reading it first would cut the connection instead of
 * answering); an unreadable or non-JSON body, a schema failure and a defect all answer with the
 * JSON error shape `{_tag, message}` instead of an empty body.
 */
export const RequestGuardsLive = HttpApiBuilder.middleware(Effect.map(AppConfig, (config) => (app) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const declaredBytes = Number(request.headers["content-length"] ?? "0")
    // Uploads (receipts) have their own, larger limit: the file plus the form's other fields.
    const isUpload = (request.headers["content-type"] ?? "").toLowerCase().startsWith("multipart/form-data")
    const limitBytes = isUpload ? config.maxReceiptBytes + config.maxBodyBytes : config.maxBodyBytes
    if (Number.isFinite(declaredBytes) && declaredBytes > limitBytes) {
      return errorResponse(413, {
        _tag: "PayloadTooLarge",
        message: `request body of ${declaredBytes} bytes is larger than the limit of ${limitBytes} bytes`
      })
    }
    return yield* app
  }).pipe(
    Effect.catchAllCause((cause) => {
      // Typed as `never` by the middleware signature, but the router's failures do arrive here.
      const failure = Cause.failureOption(cause as Cause.Cause<unknown>)
      if (Option.isSome(failure) && failure.value instanceof HttpApiError.HttpApiDecodeError) {
        return Effect.succeed(errorResponse(400, describeDecodeError(failure.value)))
      }
      if (Option.isSome(failure) && failure.value instanceof HttpServerError.RouteNotFound) {
        return Effect.succeed(errorResponse(404, { _tag: "NotFound", message: "no such route" }))
      }
      const defect = Cause.dieOption(cause)
      if (Option.isSome(defect) && defect.value instanceof HttpServerError.RequestError) {
        return Effect.succeed(
          String(defect.value.cause).includes("maxBytes exceeded")
            ? errorResponse(413, { _tag: "PayloadTooLarge", message: `request body is larger than ${config.maxBodyBytes} bytes` })
            : errorResponse(400, { _tag: "ValidationError", field: "body", message: "body: request body is not valid JSON" })
        )
      }
      if (Option.isSome(defect)) {
        return Effect.as(
          Effect.logError("request failed with a defect", cause),
          errorResponse(500, { _tag: "InternalError", message: "internal error" })
        )
      }
      return Effect.failCause(cause)
    })
  )
))

export const OpsHandlers = HttpApiBuilder.group(JivaPayApi, "ops", (handlers) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const keyValue = yield* KeyValue
    const notReady = (what: string) => () => new ServiceUnavailable({ message: `${what} is not reachable` })
    return handlers
      .handle("health", () => Effect.succeed({ status: "ok" as const }))
      .handle("ready", () =>
        Effect.gen(function*() {
          yield* sql`SELECT 1`.pipe(Effect.timeout(READY_TIMEOUT), Effect.mapError(notReady("database")))
          yield* keyValue.ping.pipe(Effect.timeout(READY_TIMEOUT), Effect.mapError(notReady("redis")))
          return { status: "ready" as const, database: "ok" as const, keyValue: "ok" as const }
        }))
  }))

export const AuthHandlers = HttpApiBuilder.group(JivaPayApi, "auth", (handlers) =>
  Effect.gen(function*() {
    const auth = yield* AuthService
    return handlers
      .handle("login", ({ payload }) =>
        Effect.flatMap(currentClientIp, (ip) => auth.login(payload.email, payload.password, ip)))
      .handle("logout", () =>
        Effect.gen(function*() {
          const user = yield* CurrentUser
          yield* auth.logout(user, yield* currentClientIp)
          return { ok: true }
        }))
  }))

export const AdminHandlers = HttpApiBuilder.group(JivaPayApi, "admin", (handlers) =>
  Effect.gen(function*() {
    const admin = yield* AdminService
    const referenceData = yield* ReferenceData
    return handlers
      .handle("createMerchant", ({ payload }) =>
        Effect.flatMap(requireRole("admin"), (actor) => admin.createMerchant(payload, actor)))
      .handle("createStore", ({ payload }) =>
        Effect.flatMap(requireRole("admin"), (actor) => admin.createStore(payload, actor)))
      .handle("createTrader", ({ payload }) =>
        Effect.flatMap(requireRole("admin"), (actor) => admin.createTrader(payload, actor)))
      .handle("putExchangeRate", ({ payload }) =>
        requireRole("admin").pipe(
          Effect.flatMap((actor) => referenceData.setRateByAdmin(actor, payload.fiat, payload.crypto, payload.rate)),
          Effect.map(rateView)
        ))
  }))

/** The trader group is for traders only; the trader id always comes from the session, never the request. */
const currentTrader = Effect.flatMap(requireRole("trader"), (user) =>
  user.traderId === null
    ? Effect.fail(new Forbidden({ message: "this user has no trader account" }))
    : Effect.succeed({ actor: user, traderId: user.traderId }))

export const TraderHandlers = HttpApiBuilder.group(JivaPayApi, "trader", (handlers) =>
  Effect.gen(function*() {
    const requisites = yield* RequisiteService
    return handlers
      .handle("listRequisites", () =>
        Effect.flatMap(currentTrader, ({ traderId }) => Effect.map(requisites.list(traderId), (items) => ({ items }))))
      .handle("createRequisite", ({ payload }) =>
        Effect.flatMap(currentTrader, ({ actor, traderId }) => requisites.create(actor, traderId, payload)))
      .handle("getRequisite", ({ path }) => Effect.flatMap(currentTrader, ({ traderId }) => requisites.get(traderId, path.id)))
      .handle("updateRequisite", ({ path, payload }) =>
        Effect.flatMap(currentTrader, ({ actor, traderId }) => requisites.update(actor, traderId, path.id, payload)))
      .handle("setWork", ({ payload }) =>
        Effect.flatMap(currentTrader, ({ actor, traderId }) => requisites.setWork(actor, traderId, payload.inWork)))
  }))
