import { Schema } from "effect"

export const Direction = Schema.Literal("payin", "payout")
export type Direction = typeof Direction.Type

export const IncomingOrderStatus = Schema.Literal("new", "retrying", "assigned", "failed", "manual_review", "cancelled")
export type IncomingOrderStatus = typeof IncomingOrderStatus.Type

export const OrderStatus = Schema.Literal(
  "assigned",
  "pending_trader_confirmation",
  "completed",
  "cancelled",
  "failed",
  "dispute",
  "requires_attention"
)
export type OrderStatus = typeof OrderStatus.Type

export const RequisiteStatus = Schema.Literal("active", "inactive", "blocked")
export type RequisiteStatus = typeof RequisiteStatus.Type

export const FraudDecision = Schema.Literal("ALLOW", "DENY", "REQUIRE_MANUAL_REVIEW")
export type FraudDecision = typeof FraudDecision.Type
