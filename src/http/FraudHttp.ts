import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { requireRole } from "../services/AuthService.js"
import { FraudDetector, fraudListEntryView, fraudRuleView } from "../services/FraudDetector.js"
import { JivaPayApi } from "./Api.js"
import { currentClientIp } from "./ClientIp.js"

/** Admin only; the acting user and address come from the session and socket, for the audit trail. */
const currentAdmin = Effect.all({ actor: requireRole("admin"), ipAddress: currentClientIp })

export const FraudHandlers = HttpApiBuilder.group(JivaPayApi, "fraud", (handlers) =>
  Effect.gen(function*() {
    const fraud = yield* FraudDetector
    return handlers
      .handle("listRules", () =>
        Effect.zipRight(requireRole("admin"), fraud.listRules()).pipe(
          Effect.map((rules) => ({ items: rules.map(fraudRuleView) }))
        ))
      .handle("createRule", ({ payload }) =>
        Effect.flatMap(currentAdmin, ({ actor, ipAddress }) => fraud.createRule(payload, actor, ipAddress)).pipe(
          Effect.map(fraudRuleView)
        ))
      .handle("deleteRule", ({ path }) =>
        Effect.flatMap(currentAdmin, ({ actor, ipAddress }) => fraud.deleteRule(path.id, actor, ipAddress)))
      .handle("listEntries", ({ urlParams }) =>
        Effect.zipRight(requireRole("admin"), fraud.listEntries(urlParams)).pipe(
          Effect.map((page) => ({ items: page.items.map(fraudListEntryView), total: page.total }))
        ))
      .handle("createListEntry", ({ payload }) =>
        Effect.flatMap(currentAdmin, ({ actor, ipAddress }) => fraud.createListEntry(payload, actor, ipAddress)).pipe(
          Effect.map(fraudListEntryView)
        ))
      .handle("deleteListEntry", ({ path }) =>
        Effect.flatMap(currentAdmin, ({ actor, ipAddress }) => fraud.deleteListEntry(path.id, actor, ipAddress)))
  }))
