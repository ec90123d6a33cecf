import { HttpApiEndpoint, HttpApiGroup } from "@effect/platform"
import { Schema } from "effect"
import { Forbidden, NotFound, ValidationError } from "../domain/Errors.js"
import { RequisiteIdFromPath } from "../domain/Ids.js"
import { RequisiteStatus } from "../domain/Status.js"
import { Authentication } from "./Security.js"
import { AmountFiat, FiatCode, Name, PositiveCount, ReferenceCode } from "./Schemas.js"

const Details = Schema.String.pipe(
  Schema.pattern(/^[0-9A-Za-z+ -]{4,64}$/, { message: () => "details must be 4-64 card/account/phone characters" })
)

export const RequisiteSettingsInput = Schema.Struct({
  payinEnabled: Schema.Boolean,
  payoutEnabled: Schema.Boolean,
  minAmount: AmountFiat,
  maxAmount: AmountFiat,
  dailyTurnoverLimit: AmountFiat,
  monthlyTurnoverLimit: AmountFiat,
  maxOrdersPerDay: PositiveCount,
  maxOpenOrders: PositiveCount
})

export const CreateRequisiteRequest = Schema.Struct({
  paymentMethod: ReferenceCode,
  bankCode: ReferenceCode,
  fiatCurrency: FiatCode,
  details: Details,
  holderName: Name,
  settings: RequisiteSettingsInput
})

export const UpdateRequisiteRequest = Schema.Struct({
  details: Schema.optional(Details),
  holderName: Schema.optional(Name),
  status: Schema.optional(Schema.Literal("active", "inactive")),
  settings: Schema.optional(Schema.partialWith(RequisiteSettingsInput, { exact: true }))
})

export const RequisiteSettingsView = Schema.Struct({
  payinEnabled: Schema.Boolean,
  payoutEnabled: Schema.Boolean,
  minAmount: Schema.String,
  maxAmount: Schema.String,
  dailyTurnoverLimit: Schema.String,
  monthlyTurnoverLimit: Schema.String,
  maxOrdersPerDay: Schema.Number,
  maxOpenOrders: Schema.Number
})

export const RequisiteView = Schema.Struct({
  id: Schema.Number,
  status: RequisiteStatus,
  paymentMethod: Schema.String,
  bankCode: Schema.String,
  fiatCurrency: Schema.String,
  details: Schema.String,
  holderName: Schema.String,
  lastAssignedAt: Schema.NullOr(Schema.String),
  settings: RequisiteSettingsView
})

export const WorkRequest = Schema.Struct({ inWork: Schema.Boolean })

export class TraderApi extends HttpApiGroup.make("trader")
  .add(
    HttpApiEndpoint.get("listRequisites", "/requisites").addSuccess(
      Schema.Struct({ items: Schema.Array(RequisiteView) })
    )
  )
  .add(
    HttpApiEndpoint.post("createRequisite", "/requisites").setPayload(CreateRequisiteRequest).addSuccess(
      RequisiteView,
      { status: 201 }
    )
  )
  .add(
    HttpApiEndpoint.get("getRequisite", "/requisites/:id").setPath(Schema.Struct({ id: RequisiteIdFromPath }))
      .addSuccess(RequisiteView)
  )
  .add(
    HttpApiEndpoint.patch("updateRequisite", "/requisites/:id").setPath(Schema.Struct({ id: RequisiteIdFromPath }))
      .setPayload(UpdateRequisiteRequest).addSuccess(RequisiteView)
  )
  .add(
    HttpApiEndpoint.post("setWork", "/work").setPayload(WorkRequest).addSuccess(
      Schema.Struct({ inWork: Schema.Boolean })
    )
  )
  .addError(Forbidden)
  .addError(NotFound)
  .addError(ValidationError)
  .middleware(Authentication)
  .prefix("/api/trader")
{}
