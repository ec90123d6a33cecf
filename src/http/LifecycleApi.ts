import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, Multipart } from "@effect/platform"
import { Schema } from "effect"
import {
  Forbidden,
  InvalidTransition,
  NotFound,
  OrderNotFound,
  PayloadTooLarge,
  ServiceUnavailable,
  ValidationError
} from "../domain/Errors.js"
import { IncomingOrderIdFromPath, OrderIdFromPath } from "../domain/Ids.js"
import { Direction, OrderStatus } from "../domain/Status.js"
import { listLimitMax, listOffsetMax, reasonLengthMax, UnsupportedReceiptType } from "../services/OrderStatusManager.js"
import { MerchantOrderView } from "./MerchantApi.js"
import { Authentication, StoreAuthentication } from "./Security.js"
import { pageLimit, pageOffset } from "./Schemas.js"

/**
 * The order lifecycle (SPEC §5.8, §6): the customer's confirmation through the merchant API, the
 * trader's order list, confirm, cancel and dispute, and the operators' manual moves. One group;
 * each endpoint names its own authentication (store API key or bearer token).
 */

const Reason = Schema.String.pipe(
  Schema.filter((value) => value.trim().length > 0 || "reason must not be empty"),
  Schema.maxLength(reasonLengthMax, { message: () => `reason must have at most ${reasonLengthMax} characters` })
)

export const ReasonRequest = Schema.Struct({ reason: Reason })
export const AdminStatusRequest = Schema.Struct({ status: OrderStatus, reason: Reason })

const PageLimit = pageLimit(listLimitMax)
const PageOffset = pageOffset(listOffsetMax)

export const TraderOrdersQuery = Schema.Struct({
  status: Schema.optional(OrderStatus),
  limit: Schema.optional(PageLimit),
  offset: Schema.optional(PageOffset)
})

export const TraderOrderItem = Schema.Struct({
  id: Schema.Number,
  incomingOrderId: Schema.Number,
  status: OrderStatus,
  direction: Direction,
  amountFiat: Schema.String,
  amountCrypto: Schema.String,
  exchangeRate: Schema.String,
  requisiteId: Schema.Number,
  payoutDestination: Schema.NullOr(Schema.Struct({ details: Schema.String, holderName: Schema.String, bankCode: Schema.String })),
  expiresAt: Schema.String
})

export const TraderOrderPage = Schema.Struct({ items: Schema.Array(TraderOrderItem), total: Schema.Number })

/**
 * Receipts arrive as a multipart stream that the handler reads itself: the size limit comes from
 * configuration at run time (MAX_RECEIPT_BYTES), and every parser failure stays a typed error
 * (413/400) instead of a defect. The schemas here only describe the form for the OpenAPI document.
 */
const ReceiptRequired = HttpApiSchema.MultipartStream(Schema.Struct({ receipt: Multipart.SingleFileSchema }))
const ReceiptOptional = HttpApiSchema.MultipartStream(Schema.Struct({ receipt: Schema.optional(Multipart.SingleFileSchema) }))

export class LifecycleApi extends HttpApiGroup.make("lifecycle")
  .add(
    HttpApiEndpoint.post("clientConfirmation", "/api/merchant/orders/:id/client-confirmation")
      .setPath(Schema.Struct({ id: IncomingOrderIdFromPath }))
      .setPayload(ReceiptRequired)
      .addSuccess(MerchantOrderView)
      .middleware(StoreAuthentication)
  )
  .add(
    HttpApiEndpoint.get("listTraderOrders", "/api/trader/orders")
      .setUrlParams(TraderOrdersQuery)
      .addSuccess(TraderOrderPage)
      .middleware(Authentication)
  )
  .add(
    HttpApiEndpoint.post("confirmByTrader", "/api/trader/orders/:id/confirm")
      .setPath(Schema.Struct({ id: OrderIdFromPath }))
      .setPayload(ReceiptOptional)
      .addSuccess(TraderOrderItem)
      .middleware(Authentication)
  )
  .add(
    HttpApiEndpoint.post("cancelByTrader", "/api/trader/orders/:id/cancel")
      .setPath(Schema.Struct({ id: OrderIdFromPath }))
      .setPayload(ReasonRequest)
      .addSuccess(TraderOrderItem)
      .middleware(Authentication)
  )
  .add(
    HttpApiEndpoint.post("disputeByTrader", "/api/trader/orders/:id/dispute")
      .setPath(Schema.Struct({ id: OrderIdFromPath }))
      .setPayload(ReasonRequest)
      .addSuccess(TraderOrderItem)
      .middleware(Authentication)
  )
  .add(
    HttpApiEndpoint.post("adminTransition", "/api/admin/orders/:id/status")
      .setPath(Schema.Struct({ id: OrderIdFromPath }))
      .setPayload(AdminStatusRequest)
      .addSuccess(TraderOrderItem)
      .middleware(Authentication)
  )
  .addError(ValidationError)
  .addError(Forbidden)
  .addError(OrderNotFound)
  .addError(NotFound)
  .addError(InvalidTransition)
  .addError(PayloadTooLarge)
  .addError(UnsupportedReceiptType)
  .addError(ServiceUnavailable)
{}
