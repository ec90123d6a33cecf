import { HttpApiEndpoint, HttpApiGroup } from "@effect/platform"
import { Schema } from "effect"
import { Conflict, Forbidden, NotFound, ValidationError } from "../domain/Errors.js"
import { MerchantId } from "../domain/Ids.js"
import { Authentication } from "./Security.js"
import {
  CryptoCode,
  Email,
  FiatCode,
  HttpUrl,
  Name,
  NewPassword,
  Percent,
  Priority,
  Rate,
  TtlSeconds
} from "./Schemas.js"

export const CreateMerchantRequest = Schema.Struct({ email: Email, password: NewPassword, name: Name })
export const CreatedUser = Schema.Struct({ id: Schema.Number, userId: Schema.Number })

export const CreateStoreRequest = Schema.Struct({
  merchantId: MerchantId,
  name: Name,
  fiatCurrency: FiatCode,
  payinCommissionPct: Percent,
  payoutCommissionPct: Percent,
  processingTtlSeconds: TtlSeconds,
  callbackUrl: Schema.optional(HttpUrl),
  gatewayRequireCustomerIdParam: Schema.optional(Schema.Boolean),
  gatewayRequireAmountParam: Schema.optional(Schema.Boolean)
})
export const CreatedStore = Schema.Struct({
  id: Schema.Number,
  publicId: Schema.String,
  apiKey: Schema.String,
  secretKey: Schema.String
})

export const CreateTraderRequest = Schema.Struct({
  email: Email,
  password: NewPassword,
  payinRewardPct: Percent,
  payoutRewardPct: Percent,
  priority: Schema.optional(Priority)
})

export const ExchangeRateRequest = Schema.Struct({ fiat: FiatCode, crypto: CryptoCode, rate: Rate })
export const ExchangeRateResponse = Schema.Struct({
  fiat: Schema.String,
  crypto: Schema.String,
  rate: Schema.String,
  source: Schema.String,
  fetchedAt: Schema.String
})

export class AdminApi extends HttpApiGroup.make("admin")
  .add(
    HttpApiEndpoint.post("createMerchant", "/merchants").setPayload(CreateMerchantRequest).addSuccess(CreatedUser, {
      status: 201
    }).addError(Conflict)
  )
  .add(
    HttpApiEndpoint.post("createStore", "/stores").setPayload(CreateStoreRequest).addSuccess(CreatedStore, {
      status: 201
    }).addError(NotFound).addError(Conflict)
  )
  .add(
    HttpApiEndpoint.post("createTrader", "/traders").setPayload(CreateTraderRequest).addSuccess(CreatedUser, {
      status: 201
    }).addError(Conflict)
  )
  .add(
    HttpApiEndpoint.put("putExchangeRate", "/exchange-rates").setPayload(ExchangeRateRequest).addSuccess(
      ExchangeRateResponse
    )
  )
  .addError(Forbidden)
  .addError(ValidationError)
  .middleware(Authentication)
  .prefix("/api/admin")
{}
