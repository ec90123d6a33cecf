import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import { CurrentStore } from "../domain/Principal.js"
import { BalanceManager } from "../services/BalanceManager.js"
import { OrderService } from "../services/OrderService.js"
import { JivaPayApi } from "./Api.js"

/** The merchant's server API: the store always comes from the API key, never from the request. */
export const MerchantHandlers = HttpApiBuilder.group(JivaPayApi, "merchant", (handlers) =>
  Effect.gen(function*() {
    const orders = yield* OrderService
    const balances = yield* BalanceManager
    return handlers
      .handle("createOrder", ({ headers, payload }) =>
        Effect.gen(function*() {
          const store = yield* CurrentStore
          const outcome = yield* orders.create(store, payload, headers["idempotency-key"])
          switch (outcome._tag) {
            case "Created":
              return outcome.order
            case "Existing":
              return HttpServerResponse.unsafeJson(outcome.order, { status: 200 })
            case "Replayed":
              return HttpServerResponse.unsafeJson(outcome.body, {
                status: outcome.status,
                headers: { "idempotent-replayed": "true" }
              })
          }
        }))
      .handle("getOrder", ({ path }) => Effect.flatMap(CurrentStore, (store) => orders.get(store, path.id)))
      .handle("getBalance", () =>
        Effect.flatMap(CurrentStore, (store) => balances.getBalance({ kind: "store", id: store.storeId })))
  }))
