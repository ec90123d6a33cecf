import { Schema } from "effect"

/** Database ids: positive integers, branded so one kind of id cannot be passed for another. */
const id = <B extends string>(brand: B) =>
  Schema.Int.pipe(Schema.positive(), Schema.lessThanOrEqualTo(Number.MAX_SAFE_INTEGER), Schema.brand(brand))

export const UserId = id("UserId")
export type UserId = typeof UserId.Type
export const MerchantId = id("MerchantId")
export type MerchantId = typeof MerchantId.Type
export const StoreId = id("StoreId")
export type StoreId = typeof StoreId.Type
export const TraderId = id("TraderId")
export type TraderId = typeof TraderId.Type
export const RequisiteId = id("RequisiteId")
export type RequisiteId = typeof RequisiteId.Type
export const IncomingOrderId = id("IncomingOrderId")
export type IncomingOrderId = typeof IncomingOrderId.Type
export const OrderId = id("OrderId")
export type OrderId = typeof OrderId.Type
export const CallbackId = id("CallbackId")
export type CallbackId = typeof CallbackId.Type

/** Path parameters arrive as strings; a non-numeric or out-of-range id is a 400 naming the field. */
const DecimalDigits = Schema.String.pipe(
  Schema.pattern(/^[1-9][0-9]{0,15}$/, { message: () => "id must be a positive decimal integer" })
)
const idFromPath = <S extends Schema.Schema<any, number>>(schema: S) =>
  Schema.compose(Schema.compose(DecimalDigits, Schema.NumberFromString), schema as any) as unknown as Schema.Schema<
    S["Type"],
    string
  >

export const UserIdFromPath = idFromPath(UserId)
export const MerchantIdFromPath = idFromPath(MerchantId)
export const StoreIdFromPath = idFromPath(StoreId)
export const TraderIdFromPath = idFromPath(TraderId)
export const RequisiteIdFromPath = idFromPath(RequisiteId)
export const IncomingOrderIdFromPath = idFromPath(IncomingOrderId)
export const OrderIdFromPath = idFromPath(OrderId)
export const CallbackIdFromPath = idFromPath(CallbackId)

export const Role = Schema.Literal("admin", "support", "merchant", "trader")
export type Role = typeof Role.Type
