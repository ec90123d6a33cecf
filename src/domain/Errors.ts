import { HttpApiSchema } from "@effect/platform"
import { Schema } from "effect"

/**
 * The domain's failures. Each carries the HTTP status it maps to when an endpoint declares it,
 * and every JSON error body has `_tag` and `message`.
 */
export class ValidationError extends Schema.TaggedError<ValidationError>()(
  "ValidationError",
  { message: Schema.String, field: Schema.optional(Schema.String) },
  HttpApiSchema.annotations({ status: 400 })
) {}

export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 401 })
) {}

export class Forbidden extends Schema.TaggedError<Forbidden>()(
  "Forbidden",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 403 })
) {}

export class NotFound extends Schema.TaggedError<NotFound>()(
  "NotFound",
  { message: Schema.String, entity: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {}

export class OrderNotFound extends Schema.TaggedError<OrderNotFound>()(
  "OrderNotFound",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {}

export class Conflict extends Schema.TaggedError<Conflict>()(
  "Conflict",
  { message: Schema.String, entity: Schema.String },
  HttpApiSchema.annotations({ status: 409 })
) {}

export class DuplicateOrder extends Schema.TaggedError<DuplicateOrder>()(
  "DuplicateOrder",
  { message: Schema.String, merchantOrderId: Schema.String },
  HttpApiSchema.annotations({ status: 409 })
) {}

export class InvalidTransition extends Schema.TaggedError<InvalidTransition>()(
  "InvalidTransition",
  { message: Schema.String, from: Schema.String, to: Schema.String },
  HttpApiSchema.annotations({ status: 409 })
) {}

export class InsufficientBalance extends Schema.TaggedError<InsufficientBalance>()(
  "InsufficientBalance",
  { message: Schema.String, account: Schema.String },
  HttpApiSchema.annotations({ status: 409 })
) {}

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()(
  "PayloadTooLarge",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 413 })
) {}

export class RequisiteNotFound extends Schema.TaggedError<RequisiteNotFound>()(
  "RequisiteNotFound",
  { message: Schema.String }
) {}

export class LimitExceeded extends Schema.TaggedError<LimitExceeded>()(
  "LimitExceeded",
  { message: Schema.String, checked: Schema.Number }
) {}

export class RateUnavailable extends Schema.TaggedError<RateUnavailable>()(
  "RateUnavailable",
  { message: Schema.String, pair: Schema.String },
  HttpApiSchema.annotations({ status: 503 })
) {}

export class ConfigurationError extends Schema.TaggedError<ConfigurationError>()(
  "ConfigurationError",
  { message: Schema.String }
) {}

export class FraudDenied extends Schema.TaggedError<FraudDenied>()(
  "FraudDenied",
  { message: Schema.String, rule: Schema.String }
) {}

export class FraudReview extends Schema.TaggedError<FraudReview>()(
  "FraudReview",
  { message: Schema.String, rule: Schema.String }
) {}

export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()(
  "ServiceUnavailable",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 503 })
) {}

/** An unexpected failure surfaced to a client: the details stay in the logs. */
export class InternalError extends Schema.TaggedError<InternalError>()(
  "InternalError",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 500 })
) {}
