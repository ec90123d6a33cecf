import { HttpApiEndpoint, HttpApiGroup } from "@effect/platform"
import { Schema } from "effect"
import { Conflict, DuplicateOrder, NotFound, ValidationError } from "../domain/Errors.js"
import { IncomingOrderIdFromPath } from "../domain/Ids.js"
import { Direction, IncomingOrderStatus, OrderStatus } from "../domain/Status.js"
import { StoreAuthentication } from "./Security.js"
import { AmountFiat, FiatCode, HttpUrl, Name, ReferenceCode } from "./Schemas.js"

const MerchantOrderId = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9._:-]{1,128}$/, {
    message: () => "merchantOrderId must be 1-128 characters of letters, digits, . _ : -"
  })
)
const CustomerId = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9._:@-]{1,128}$/, { message: () => "customerId must be 1-128 safe characters" })
)
const IpAddress = Schema.String.pipe(
  Schema.maxLength(45, { message: () => "clientIp is too long" }),
  Schema.pattern(/^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]{2,45})$/, { message: () => "clientIp must be an IPv4 or IPv6 address" })
)
const PayoutDetails = Schema.String.pipe(
  Schema.pattern(/^[0-9A-Za-z+ -]{4,64}$/, { message: () => "payoutDestination.details must be 4-64 card/account/phone characters" })
)

export const PayoutDestination = Schema.Struct({ details: PayoutDetails, holderName: Name, bankCode: ReferenceCode })

export const CreateOrderRequest = Schema.Struct({
  merchantOrderId: MerchantOrderId,
  direction: Direction,
  amount: AmountFiat,
  currency: FiatCode,
  paymentMethod: ReferenceCode,
  bankCode: Schema.optional(ReferenceCode),
  customerId: Schema.optional(CustomerId),
  clientIp: Schema.optional(IpAddress),
  returnUrl: Schema.optional(HttpUrl),
  callbackUrl: Schema.optional(HttpUrl),
  payoutDestination: Schema.optional(PayoutDestination)
})
export type CreateOrderRequest = typeof CreateOrderRequest.Type

export const RequisiteForCustomer = Schema.Struct({
  bankCode: Schema.String,
  paymentMethod: Schema.String,
  details: Schema.String,
  holderName: Schema.String
})

export const AssignedOrderView = Schema.Struct({
  id: Schema.Number,
  status: OrderStatus,
  exchangeRate: Schema.String,
  amountCrypto: Schema.String,
  expiresAt: Schema.String,
  requisite: Schema.NullOr(RequisiteForCustomer)
})

export const MerchantOrderView = Schema.Struct({
  id: Schema.Number,
  merchantOrderId: Schema.String,
  direction: Direction,
  amount: Schema.String,
  currency: Schema.String,
  status: IncomingOrderStatus,
  failureReason: Schema.NullOr(Schema.String),
  createdAt: Schema.String,
  order: Schema.NullOr(AssignedOrderView)
})
export type MerchantOrderView = typeof MerchantOrderView.Type

export const BalanceResponse = Schema.Struct({ balance: Schema.String, frozen: Schema.String, available: Schema.String })

const IdempotencyHeaders = Schema.Struct({
  "idempotency-key": Schema.optional(
    Schema.String.pipe(Schema.pattern(/^[\x21-\x7e]{1,255}$/, { message: () => "Idempotency-Key must be 1-255 visible ASCII characters" }))
  )
})

export class MerchantApi extends HttpApiGroup.make("merchant")
  .add(
    HttpApiEndpoint.post("createOrder", "/orders")
      .setPayload(CreateOrderRequest)
      .setHeaders(IdempotencyHeaders)
      .addSuccess(MerchantOrderView, { status: 201 })
      .addError(DuplicateOrder)
      .addError(Conflict)
  )
  .add(
    HttpApiEndpoint.get("getOrder", "/orders/:id").setPath(Schema.Struct({ id: IncomingOrderIdFromPath })).addSuccess(
      MerchantOrderView
    )
  )
  .add(HttpApiEndpoint.get("getBalance", "/balance").addSuccess(BalanceResponse))
  .addError(NotFound)
  .addError(ValidationError)
  .middleware(StoreAuthentication)
  .prefix("/api/merchant")
{}
