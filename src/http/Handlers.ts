import { HttpApiBuilder } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Redacted } from "effect"
import { Forbidden, ServiceUnavailable } from "../domain/Errors.js"
import { CurrentUser } from "../domain/Principal.js"
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
