import { HttpApiEndpoint, HttpApiGroup } from "@effect/platform"
import { Schema } from "effect"
import { Forbidden, InsufficientBalance, NotFound, ValidationError } from "../domain/Errors.js"
import { StoreIdFromPath, TraderIdFromPath } from "../domain/Ids.js"
import { AmountCrypto } from "../domain/Money.js"
import { BalanceResponse } from "./MerchantApi.js"
import { Authentication } from "./Security.js"

export const LedgerEntryRequest = Schema.Struct({
  amount: AmountCrypto,
  note: Schema.optional(Schema.String.pipe(Schema.maxLength(500, { message: () => "note is too long" })))
})

export const ReconciliationResponse = Schema.Struct({
  ok: Schema.Boolean,
  differences: Schema.Array(Schema.Struct({ account: Schema.String, expected: Schema.String, actual: Schema.String })),
  totals: Schema.Struct({ stores: Schema.String, traders: Schema.String, platform: Schema.String, externalNet: Schema.String })
})

const entry = <const Name extends string, const Path extends `/${string}`>(name: Name, path: Path, idSchema: typeof TraderIdFromPath | typeof StoreIdFromPath) =>
  HttpApiEndpoint.post(name, path).setPath(Schema.Struct({ id: idSchema })).setPayload(LedgerEntryRequest).addSuccess(
    BalanceResponse
  )

/** Admin ledger entries against the external account, and the trader's own balance. */
export class LedgerApi extends HttpApiGroup.make("ledger")
  .add(entry("depositTrader", "/api/admin/traders/:id/deposit", TraderIdFromPath))
  .add(entry("withdrawTrader", "/api/admin/traders/:id/withdrawal", TraderIdFromPath))
  .add(entry("depositStore", "/api/admin/stores/:id/deposit", StoreIdFromPath))
  .add(entry("withdrawStore", "/api/admin/stores/:id/withdrawal", StoreIdFromPath))
  .add(HttpApiEndpoint.get("traderBalance", "/api/trader/balance").addSuccess(BalanceResponse))
  .add(HttpApiEndpoint.get("reconciliation", "/api/admin/reconciliation").addSuccess(ReconciliationResponse))
  .addError(Forbidden)
  .addError(NotFound)
  .addError(ValidationError)
  .addError(InsufficientBalance)
  .middleware(Authentication)
{}
