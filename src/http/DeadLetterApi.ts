import { HttpApiEndpoint, HttpApiGroup } from "@effect/platform"
import { Schema } from "effect"
import { Forbidden, InvalidTransition, NotFound, ValidationError } from "../domain/Errors.js"
import { IncomingOrderIdFromPath } from "../domain/Ids.js"
import { Direction, IncomingOrderStatus } from "../domain/Status.js"
import { listLimitMax } from "../services/OrderProcessor.js"
import { Authentication } from "./Security.js"
import { pageLimit, pageOffset } from "./Schemas.js"

const listOffsetMax = 1_000_000

const PageLimit = pageLimit(listLimitMax)
const PageOffset = pageOffset(listOffsetMax)

export const IncomingOrdersQuery = Schema.Struct({
  status: Schema.optional(IncomingOrderStatus),
  limit: Schema.optional(PageLimit),
  offset: Schema.optional(PageOffset)
})

export const IncomingOrderResponse = Schema.Struct({
  id: Schema.Number,
  storeId: Schema.Number,
  merchantOrderId: Schema.String,
  direction: Direction,
  amount: Schema.String,
  currency: Schema.String,
  paymentMethod: Schema.String,
  bankCode: Schema.NullOr(Schema.String),
  status: IncomingOrderStatus,
  retryCount: Schema.Number,
  lastAttemptAt: Schema.NullOr(Schema.String),
  nextAttemptAt: Schema.String,
  failureReason: Schema.NullOr(Schema.String),
  assignedOrderId: Schema.NullOr(Schema.Number),
  createdAt: Schema.String
})

/** Dead letters (SPEC §5.4): operators see failed and held incoming orders and send them back to the queue. */
export class DeadLetterApi extends HttpApiGroup.make("deadLetters")
  .add(
    HttpApiEndpoint.get("listIncomingOrders", "/api/admin/incoming-orders")
      .setUrlParams(IncomingOrdersQuery)
      .addSuccess(Schema.Struct({ items: Schema.Array(IncomingOrderResponse), total: Schema.Number }))
  )
  .add(
    HttpApiEndpoint.post("retryIncomingOrder", "/api/admin/incoming-orders/:id/retry")
      .setPath(Schema.Struct({ id: IncomingOrderIdFromPath }))
      .addSuccess(IncomingOrderResponse)
      .addError(NotFound)
      .addError(InvalidTransition)
  )
  .addError(Forbidden)
  .addError(ValidationError)
  .middleware(Authentication)
{}
