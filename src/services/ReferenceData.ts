import { SqlClient } from "@effect/sql"
import { BigDecimal, Duration, Effect, Option, Schema } from "effect"
import { RateUnavailable, ValidationError } from "../domain/Errors.js"
import { DecimalFromNumeric, formatRate } from "../domain/Money.js"
import type { UserPrincipal } from "../domain/Principal.js"
import { AppConfig } from "../layers/Config.js"
import { atomic, dieOnInfrastructure } from "./Atomic.js"
import { AuditLogger } from "./AuditLogger.js"

export interface ExchangeRate {
  readonly fiat: string
  readonly crypto: string
  readonly rate: BigDecimal.BigDecimal
  readonly source: string
  readonly fetchedAt: Date
}

const RateRow = Schema.Struct({
  fiatCode: Schema.String,
  cryptoCode: Schema.String,
  rate: DecimalFromNumeric,
  source: Schema.String,
  fetchedAt: Schema.DateFromSelf
})
const decodeRates = Schema.decodeUnknown(Schema.Array(RateRow))

export const rateView = (rate: ExchangeRate) => ({
  fiat: rate.fiat,
  crypto: rate.crypto,
  rate: formatRate(rate.rate),
  source: rate.source,
  fetchedAt: rate.fetchedAt.toISOString()
})

/** Exchange rates and reference codes. A rate older than RATE_MAX_AGE is never used to price an order. */
export class ReferenceData extends Effect.Service<ReferenceData>()("ReferenceData", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AppConfig
    const audit = yield* AuditLogger

    const checkCode = (table: "fiat_currencies" | "crypto_currencies", code: string, field: string) =>
      sql`SELECT 1 FROM ${sql(table)} WHERE code = ${code} AND is_active`.pipe(
        Effect.flatMap((rows) =>
          rows.length === 0 ? Effect.fail(new ValidationError({ field, message: `${field} ${code} is not known` })) : Effect.void
        )
      )

    const recordRate = Effect.fn("ReferenceData.recordRate")(function*(
      fiat: string,
      crypto: string,
      rate: BigDecimal.BigDecimal,
      source: string
    ) {
      yield* checkCode("fiat_currencies", fiat, "fiat")
      yield* checkCode("crypto_currencies", crypto, "crypto")
      const rows = yield* sql`INSERT INTO exchange_rates ${
        sql.insert({ fiatCode: fiat, cryptoCode: crypto, rate: formatRate(rate), source })
      } RETURNING fiat_code, crypto_code, rate, source, fetched_at`.pipe(Effect.flatMap(decodeRates))
      const row = rows[0]!
      return { fiat: row.fiatCode, crypto: row.cryptoCode, rate: row.rate, source: row.source, fetchedAt: row.fetchedAt }
    })

    const setRateByAdmin = Effect.fn("ReferenceData.setRateByAdmin")(function*(
      actor: UserPrincipal,
      fiat: string,
      crypto: string,
      rate: BigDecimal.BigDecimal
    ) {
      return yield* atomic("referenceData.setRate", Effect.gen(function*() {
        const recorded = yield* recordRate(fiat, crypto, rate, "admin")
        yield* audit.logAction({
          action: "admin.exchange_rate_set",
          userId: actor.userId,
          userRole: actor.role,
          targetEntity: "exchange_rate",
          targetId: `${fiat}/${crypto}`,
          details: { rate: formatRate(rate) }
        })
        return recorded
      }))
    }, dieOnInfrastructure)

    const latestRate = (fiat: string, crypto: string) =>
      sql`SELECT fiat_code, crypto_code, rate, source, fetched_at FROM exchange_rates
          WHERE fiat_code = ${fiat} AND crypto_code = ${crypto}
          ORDER BY fetched_at DESC, id DESC LIMIT 1`.pipe(
        Effect.flatMap(decodeRates),
        Effect.map((rows) =>
          Option.map(Option.fromNullable(rows[0]), (row): ExchangeRate => ({
            fiat: row.fiatCode,
            crypto: row.cryptoCode,
            rate: row.rate,
            source: row.source,
            fetchedAt: row.fetchedAt
          })))
      )

    /** The rate to price an order with, or RateUnavailable when absent or stale. */
    const currentRate = Effect.fn("ReferenceData.currentRate")(function*(fiat: string, crypto: string) {
      const latest = yield* latestRate(fiat, crypto)
      const pair = `${fiat}/${crypto}`
      if (Option.isNone(latest)) {
        return yield* new RateUnavailable({ pair, message: `no exchange rate for ${pair}` })
      }
      const ageMs = Date.now() - latest.value.fetchedAt.getTime()
      if (ageMs > Duration.toMillis(config.rateMaxAge)) {
        return yield* new RateUnavailable({
          pair,
          message: `exchange rate for ${pair} is ${Math.round(ageMs / 1000)} s old, older than RATE_MAX_AGE`
        })
      }
      return latest.value
    }, dieOnInfrastructure)

    return { recordRate, setRateByAdmin, latestRate, currentRate } as const
  }),
  dependencies: [AuditLogger.Default]
}) {}
