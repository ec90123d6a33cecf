import { HttpApiEndpoint, HttpApiGroup } from "@effect/platform"
import { BigDecimal, Schema } from "effect"
import { Conflict, Forbidden, NotFound, ValidationError } from "../domain/Errors.js"
import { ListEntityKind, ListType, RuleAction, RuleEntityKind, RuleMetric } from "../services/FraudDetector.js"
import { Authentication } from "./Security.js"

/** Rule and list ids in paths; a non-numeric id is a 400 naming `id`. */
const FraudIdFromPath = Schema.compose(
  Schema.NumberFromString,
  Schema.Int.pipe(Schema.between(1, Number.MAX_SAFE_INTEGER, { message: () => "id must be a positive integer" }))
)

const RuleName = Schema.String.pipe(
  Schema.pattern(/^[a-z0-9][a-z0-9_.-]{0,63}$/, {
    message: () => "name must be 1-64 lowercase letters, digits, '_', '.', '-', starting with a letter or digit"
  })
)

const WindowSeconds = Schema.Int.pipe(
  Schema.between(1, 2_592_000, { message: () => "windowSeconds must be an integer between 1 and 2592000 (30 days)" })
)

/** A decimal string like "30" or "500000.00"; the service checks positivity and whole counts. */
const Threshold = Schema.String.pipe(
  Schema.pattern(/^(0|[1-9][0-9]{0,11})(\.[0-9]{1,2})?$/, {
    message: () => "threshold must be a decimal string with at most 12 integer digits and 2 decimals, e.g. \"30\""
  }),
  Schema.compose(Schema.BigDecimal),
  Schema.filter((value) => BigDecimal.isPositive(value) || "threshold must be greater than 0")
)

const ListValue = Schema.String.pipe(
  Schema.minLength(1, { message: () => "value must not be empty" }),
  Schema.maxLength(256, { message: () => "value must have at most 256 characters" })
)

const Reason = Schema.String.pipe(Schema.maxLength(500, { message: () => "reason must have at most 500 characters" }))

/** ISO 8601 with a date and, optionally, a time and zone ("2030-01-31" or "2030-01-31T12:00:00Z"). */
const IsoDateTime = Schema.String.pipe(
  Schema.pattern(/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/, {
    message: () => "expiresAt must be an ISO date like \"2030-01-31T12:00:00Z\""
  }),
  Schema.compose(Schema.Date)
)

const PageSize = Schema.NumberFromString.pipe(
  Schema.compose(Schema.Int.pipe(Schema.between(1, 500, { message: () => "limit must be an integer between 1 and 500" })))
)
const PageOffset = Schema.NumberFromString.pipe(
  Schema.compose(Schema.Int.pipe(Schema.between(0, 1_000_000, { message: () => "offset must be an integer between 0 and 1000000" })))
)

export const CreateFraudRuleRequest = Schema.Struct({
  name: RuleName,
  entityKind: RuleEntityKind,
  metric: RuleMetric,
  windowSeconds: WindowSeconds,
  threshold: Threshold,
  action: RuleAction,
  isActive: Schema.optional(Schema.Boolean)
})

export const CreateFraudListEntryRequest = Schema.Struct({
  listType: ListType,
  entityKind: ListEntityKind,
  value: ListValue,
  reason: Schema.optional(Schema.NullOr(Reason)),
  expiresAt: Schema.optional(Schema.NullOr(IsoDateTime))
})

export const FraudRuleView = Schema.Struct({
  id: Schema.Number,
  name: Schema.String,
  entityKind: RuleEntityKind,
  metric: RuleMetric,
  windowSeconds: Schema.Number,
  threshold: Schema.String,
  action: RuleAction,
  isActive: Schema.Boolean,
  createdAt: Schema.String
})

export const FraudListEntryView = Schema.Struct({
  id: Schema.Number,
  listType: ListType,
  entityKind: ListEntityKind,
  value: Schema.String,
  reason: Schema.NullOr(Schema.String),
  expiresAt: Schema.NullOr(Schema.String),
  createdAt: Schema.String
})

const IdPath = Schema.Struct({ id: FraudIdFromPath })

/** Admin management of fraud rules and black/white lists (SPEC §5.11). Deletes answer 204. */
export class FraudApi extends HttpApiGroup.make("fraud")
  .add(HttpApiEndpoint.get("listRules", "/rules").addSuccess(Schema.Struct({ items: Schema.Array(FraudRuleView) })))
  .add(
    HttpApiEndpoint.post("createRule", "/rules").setPayload(CreateFraudRuleRequest)
      .addSuccess(FraudRuleView, { status: 201 }).addError(Conflict)
  )
  .add(HttpApiEndpoint.del("deleteRule", "/rules/:id").setPath(IdPath).addError(NotFound))
  .add(
    HttpApiEndpoint.get("listEntries", "/lists")
      .setUrlParams(Schema.Struct({ limit: Schema.optional(PageSize), offset: Schema.optional(PageOffset) }))
      .addSuccess(Schema.Struct({ items: Schema.Array(FraudListEntryView), total: Schema.Number }))
  )
  .add(
    HttpApiEndpoint.post("createListEntry", "/lists").setPayload(CreateFraudListEntryRequest)
      .addSuccess(FraudListEntryView, { status: 201 }).addError(Conflict)
  )
  .add(HttpApiEndpoint.del("deleteListEntry", "/lists/:id").setPath(IdPath).addError(NotFound))
  .addError(Forbidden)
  .addError(ValidationError)
  .middleware(Authentication)
  .prefix("/api/admin/fraud")
{}
