import { SqlClient, SqlError } from "@effect/sql"
import { BigDecimal, Effect, Schema } from "effect"
import { NotFound, ValidationError } from "../domain/Errors.js"
import type { UserPrincipal } from "../domain/Principal.js"
import { atomic, dieOnInfrastructure, mapConstraintErrors } from "./Atomic.js"
import { AuditLogger } from "./AuditLogger.js"
import { makeApiKey } from "./AuthService.js"
import { hashPassword, randomToken } from "./Passwords.js"
import { formatPercent } from "../domain/Money.js"

export interface NewMerchant {
  readonly email: string
  readonly password: string
  readonly name: string
}

export interface NewStore {
  readonly merchantId: number
  readonly name: string
  readonly fiatCurrency: string
  readonly payinCommissionPct: BigDecimal.BigDecimal
  readonly payoutCommissionPct: BigDecimal.BigDecimal
  readonly processingTtlSeconds: number
  readonly callbackUrl?: string | undefined
  readonly gatewayRequireCustomerIdParam?: boolean | undefined
  readonly gatewayRequireAmountParam?: boolean | undefined
}

export interface NewTrader {
  readonly email: string
  readonly password: string
  readonly payinRewardPct: BigDecimal.BigDecimal
  readonly payoutRewardPct: BigDecimal.BigDecimal
  readonly priority?: number | undefined
}

const IdRow = Schema.Struct({ id: Schema.Number })
const decodeId = Schema.decodeUnknown(Schema.Array(IdRow))

/** Creation of tenants and their accounts; every creation is audited in the same transaction. */
export class AdminService extends Effect.Service<AdminService>()("AdminService", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* AuditLogger

    const insertReturningId = (statement: Effect.Effect<ReadonlyArray<unknown>, SqlError.SqlError>) =>
      statement.pipe(Effect.flatMap(decodeId), Effect.map((rows) => rows[0]!.id))

    const insertUser = (email: string, password: string, role: "merchant" | "trader" | "admin" | "support") =>
      Effect.gen(function*() {
        const passwordHash = yield* hashPassword(password)
        return yield* insertReturningId(
          sql`INSERT INTO users ${sql.insert({ email, passwordHash, role })} RETURNING id`
        )
      })

    const createMerchant = Effect.fn("AdminService.createMerchant")(function*(input: NewMerchant, actor: UserPrincipal) {
      return yield* atomic(
        "admin.createMerchant",
        Effect.gen(function*() {
          const userId = yield* insertUser(input.email, input.password, "merchant")
          const id = yield* insertReturningId(
            sql`INSERT INTO merchants ${sql.insert({ userId, name: input.name })} RETURNING id`
          )
          yield* audit.logAction({
            action: "admin.merchant_created",
            userId: actor.userId,
            userRole: actor.role,
            targetEntity: "merchant",
            targetId: id,
            details: { email: input.email, name: input.name }
          })
          return { id, userId }
        })
      ).pipe(mapConstraintErrors("user with this email"), dieOnInfrastructure)
    })

    const createStore = Effect.fn("AdminService.createStore")(function*(input: NewStore, actor: UserPrincipal) {
      return yield* atomic(
        "admin.createStore",
        Effect.gen(function*() {
          const merchant = yield* sql`SELECT id FROM merchants WHERE id = ${input.merchantId}`
          if (merchant.length === 0) {
            return yield* new NotFound({ entity: "merchant", message: `merchant ${input.merchantId} not found` })
          }
          const currency = yield* sql`SELECT code FROM fiat_currencies WHERE code = ${input.fiatCurrency} AND is_active`
          if (currency.length === 0) {
            return yield* new ValidationError({
              field: "fiatCurrency",
              message: `fiatCurrency ${input.fiatCurrency} is not a supported currency`
            })
          }
          const key = makeApiKey()
          const secretKey = `whsec_${randomToken(32)}`
          const publicId = `st_${randomToken(12)}`
          const id = yield* insertReturningId(sql`INSERT INTO merchant_stores ${
            sql.insert({
              merchantId: input.merchantId,
              name: input.name,
              publicId,
              apiKeyPrefix: key.prefix,
              apiKeyHash: key.hash,
              secretKey,
              callbackUrl: input.callbackUrl ?? null,
              processingTtlSeconds: input.processingTtlSeconds,
              gatewayRequireCustomerIdParam: input.gatewayRequireCustomerIdParam ?? false,
              gatewayRequireAmountParam: input.gatewayRequireAmountParam ?? true,
              fiatCurrency: input.fiatCurrency,
              payinCommissionPct: formatPercent(input.payinCommissionPct),
              payoutCommissionPct: formatPercent(input.payoutCommissionPct)
            })
          } RETURNING id`)
          yield* sql`INSERT INTO balance_stores (store_id) VALUES (${id})`
          yield* audit.logAction({
            action: "admin.store_created",
            userId: actor.userId,
            userRole: actor.role,
            targetEntity: "store",
            targetId: id,
            details: { merchantId: input.merchantId, name: input.name, publicId }
          })
          return { id, publicId, apiKey: key.apiKey, secretKey }
        })
      ).pipe(mapConstraintErrors("store"), dieOnInfrastructure)
    })

    const createTrader = Effect.fn("AdminService.createTrader")(function*(input: NewTrader, actor: UserPrincipal) {
      return yield* atomic(
        "admin.createTrader",
        Effect.gen(function*() {
          const userId = yield* insertUser(input.email, input.password, "trader")
          const id = yield* insertReturningId(sql`INSERT INTO traders ${
            sql.insert({
              userId,
              payinRewardPct: formatPercent(input.payinRewardPct),
              payoutRewardPct: formatPercent(input.payoutRewardPct),
              priority: input.priority ?? 0
            })
          } RETURNING id`)
          yield* sql`INSERT INTO balance_traders (trader_id) VALUES (${id})`
          yield* audit.logAction({
            action: "admin.trader_created",
            userId: actor.userId,
            userRole: actor.role,
            targetEntity: "trader",
            targetId: id,
            details: { email: input.email }
          })
          return { id, userId }
        })
      ).pipe(mapConstraintErrors("user with this email"), dieOnInfrastructure)
    })

    /** For the seed: the first admin. */
    const ensureAdmin = Effect.fn("AdminService.ensureAdmin")(function*(email: string, password: string) {
      const existing = yield* sql`SELECT id FROM users WHERE lower(email) = lower(${email})`
      if (existing.length > 0) return { created: false }
      yield* insertUser(email, password, "admin")
      return { created: true }
    }, dieOnInfrastructure)

    return { createMerchant, createStore, createTrader, ensureAdmin } as const
  }),
  dependencies: [AuditLogger.Default]
}) {}
