import { SqlClient } from "@effect/sql"
import { BigDecimal, Duration, Effect, Option, Schema } from "effect"
import { NotFound, RateUnavailable, ValidationError } from "../domain/Errors.js"
import { DecimalFromNumeric, formatRate } from "../domain/Money.js"
import type { UserPrincipal } from "../domain/Principal.js"
import { AppConfig } from "../layers/Config.js"
import { KeyValue } from "../layers/KeyValue.js"
import { atomic, dieOnInfrastructure } from "./Atomic.js"
import { AuditLogger } from "./AuditLogger.js"
import { fetchProviderRate } from "./RateProvider.js"

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

const CachedRate = Schema.Struct({ rate: DecimalFromNumeric, source: Schema.String, fetchedAt: Schema.Date })

/** Short: the cache spares the database, while staleness is always judged from fetchedAt itself. */
const RATE_CACHE_TTL_MS = 30_000
const LOOKUP_CACHE_TTL_MS = 60_000
const LOOKUP_CACHE_MAX_ENTRIES = 1_000

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
    const keyValue = yield* KeyValue

    const checkCode = (table: "fiat_currencies" | "crypto_currencies", code: string, field: string) =>
      sql`SELECT 1 FROM ${sql(table)} WHERE code = ${code} AND is_active`.pipe(
        Effect.flatMap((rows) =>
          rows.length === 0 ? Effect.fail(new ValidationError({ field, message: `${field} ${code} is not known` })) : Effect.void
        )
      )

    const cacheRateOrIgnore = (rate: ExchangeRate) => cacheRate(rate)

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
    }, dieOnInfrastructure, Effect.tap(cacheRateOrIgnore))

    const cacheKey = (fiat: string, crypto: string) => `rate:${fiat}:${crypto}`

    /** The newest rate through the cache: every worker prices orders, one query per TTL is enough. */
    const cachedLatestRate = (fiat: string, crypto: string) =>
      Effect.gen(function*() {
        const cached = yield* keyValue.get(cacheKey(fiat, crypto)).pipe(
          Effect.catchAll((error) => Effect.as(Effect.logWarning("rate cache unavailable; reading the database", error.message), Option.none<string>()))
        )
        if (Option.isSome(cached)) {
          const decoded = yield* Schema.decodeUnknown(Schema.parseJson(CachedRate))(cached.value).pipe(Effect.option)
          if (Option.isSome(decoded)) return Option.some<ExchangeRate>({ fiat, crypto, ...decoded.value })
        }
        const latest = yield* latestRate(fiat, crypto)
        if (Option.isSome(latest)) yield* cacheRate(latest.value)
        return latest
      })

    const cacheRate = (rate: ExchangeRate) =>
      Schema.encode(Schema.parseJson(CachedRate))({ rate: rate.rate, source: rate.source, fetchedAt: rate.fetchedAt }).pipe(
        Effect.flatMap((json) => keyValue.set(cacheKey(rate.fiat, rate.crypto), json, RATE_CACHE_TTL_MS)),
        Effect.catchAll((error) => Effect.logWarning("rate not cached", String(error)))
      )

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
      const latest = yield* cachedLatestRate(fiat, crypto)
      const pair = `${fiat}/${crypto}`
      if (Option.isNone(latest)) {
        return yield* new RateUnavailable({ pair, message: `no exchange rate for ${pair}` })
      }
      const ageMs = Date.now() - latest.value.fetchedAt.getTime()
      if (ageMs > Duration.toMillis(config.rateMaxAge)) {
        yield* Effect.logError(`ALERT: exchange rate for ${pair} is stale; orders wait until it is refreshed`)
        return yield* new RateUnavailable({
          pair,
          message: `exchange rate for ${pair} is ${Math.round(ageMs / 1000)} s old, older than RATE_MAX_AGE`
        })
      }
      return latest.value
    }, dieOnInfrastructure)

    /** Pairs worth refreshing: every active fiat currency a store uses, against the stores' crypto. */
    const activePairs = sql<{ fiat: string; crypto: string }>`
      SELECT DISTINCT s.fiat_currency AS fiat, s.crypto_currency AS crypto
      FROM merchant_stores s
      JOIN fiat_currencies f ON f.code = s.fiat_currency AND f.is_active
      WHERE s.is_active
      LIMIT 100`.pipe(dieOnInfrastructure)

    /** Pulls one pair from the provider, records it (history kept) and refreshes the cache. */
    const refreshFromProvider = Effect.fn("ReferenceData.refreshFromProvider")(function*(urlTemplate: string, fiat: string, crypto: string) {
      const rate = yield* fetchProviderRate(urlTemplate, fiat, crypto)
      const recorded = yield* recordRate(fiat, crypto, rate, "provider").pipe(dieOnInfrastructure)
      yield* cacheRate(recorded)
      return recorded
    })

    const lookupCache = new Map<string, { readonly known: boolean; readonly expiresAtMs: number }>()
    /** Cached existence checks of reference codes; an unknown code is a typed 404. */
    const requireReference = Effect.fn("ReferenceData.requireReference")(function*(
      table: "fiat_currencies" | "crypto_currencies" | "banks" | "payment_methods",
      code: string
    ) {
      const key = `${table}:${code}`
      const now = Date.now()
      const cached = lookupCache.get(key)
      const known = cached !== undefined && cached.expiresAtMs > now
        ? cached.known
        : yield* sql`SELECT 1 FROM ${sql(table)} WHERE code = ${code} AND is_active`.pipe(
          Effect.map((rows) => rows.length > 0),
          dieOnInfrastructure
        )
      if (lookupCache.size >= LOOKUP_CACHE_MAX_ENTRIES) lookupCache.clear()
      lookupCache.set(key, { known, expiresAtMs: now + LOOKUP_CACHE_TTL_MS })
      if (!known) return yield* new NotFound({ entity: table, message: `${code} is not a known ${table.replace(/_/g, " ")} code` })
      return code
    })

    return { recordRate, setRateByAdmin, latestRate, currentRate, activePairs, refreshFromProvider, requireReference } as const
  }),
  dependencies: [AuditLogger.Default]
}) {}
