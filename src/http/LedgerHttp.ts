import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { Forbidden } from "../domain/Errors.js"
import { requireRole } from "../services/AuthService.js"
import { BalanceManager } from "../services/BalanceManager.js"
import { Reconciliation } from "../services/Reconciliation.js"
import { JivaPayApi } from "./Api.js"

export const LedgerHandlers = HttpApiBuilder.group(JivaPayApi, "ledger", (handlers) =>
  Effect.gen(function*() {
    const balances = yield* BalanceManager
    const reconciliation = yield* Reconciliation
    const asAdmin = requireRole("admin")
    return handlers
      .handle("depositTrader", ({ path, payload }) =>
        Effect.flatMap(asAdmin, (actor) => balances.deposit({ kind: "trader", id: path.id }, payload.amount, actor, payload.note ?? null)))
      .handle("withdrawTrader", ({ path, payload }) =>
        Effect.flatMap(asAdmin, (actor) => balances.withdraw({ kind: "trader", id: path.id }, payload.amount, actor, payload.note ?? null)))
      .handle("depositStore", ({ path, payload }) =>
        Effect.flatMap(asAdmin, (actor) => balances.deposit({ kind: "store", id: path.id }, payload.amount, actor, payload.note ?? null)))
      .handle("withdrawStore", ({ path, payload }) =>
        Effect.flatMap(asAdmin, (actor) => balances.withdraw({ kind: "store", id: path.id }, payload.amount, actor, payload.note ?? null)))
      .handle("reconciliation", () => Effect.zipRight(asAdmin, reconciliation.run()))
      .handle("traderBalance", () =>
        Effect.gen(function*() {
          const user = yield* requireRole("trader")
          if (user.traderId === null) return yield* new Forbidden({ message: "this user has no trader account" })
          return yield* balances.getBalance({ kind: "trader", id: user.traderId })
        }))
  }))
