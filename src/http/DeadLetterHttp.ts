import { HttpApiBuilder } from "@effect/platform"
import { Effect, Layer } from "effect"
import { requireRole } from "../services/AuthService.js"
import { ErrorReporter } from "../services/ErrorReporter.js"
import { FraudDetector } from "../services/FraudDetector.js"
import { OrderProcessor } from "../services/OrderProcessor.js"
import { JivaPayApi } from "./Api.js"
import { currentClientIp } from "./ClientIp.js"

const operator = requireRole("admin", "support")

const DeadLetterGroup = HttpApiBuilder.group(JivaPayApi, "deadLetters", (handlers) =>
  Effect.gen(function*() {
    const processor = yield* OrderProcessor
    return handlers
      .handle("listIncomingOrders", ({ urlParams }) => Effect.zipRight(operator, processor.listIncomingOrders(urlParams)))
      .handle("retryIncomingOrder", ({ path }) =>
        Effect.flatMap(
          Effect.all({ actor: operator, ipAddress: currentClientIp }),
          ({ actor, ipAddress }) => processor.retryIncomingOrder(path.id, actor, ipAddress)
        ))
  }))

/** The handlers with the processor they call (its infrastructure comes from the app). */
export const DeadLetterHandlers = DeadLetterGroup.pipe(
  Layer.provide(OrderProcessor.Default),
  Layer.provide([FraudDetector.Default, ErrorReporter.Default])
)
