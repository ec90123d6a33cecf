import { SqlClient } from "@effect/sql"
import { BigDecimal, Effect, Schema } from "effect"
import { NotFound, ValidationError } from "../domain/Errors.js"
import type { UserPrincipal } from "../domain/Principal.js"
import { DecimalFromNumeric, formatFiat } from "../domain/Money.js"
import { RequisiteStatus } from "../domain/Status.js"
import { atomic, dieOnInfrastructure } from "./Atomic.js"
import { AuditLogger } from "./AuditLogger.js"

export interface RequisiteSettings {
  readonly payinEnabled: boolean
  readonly payoutEnabled: boolean
  readonly minAmount: BigDecimal.BigDecimal
  readonly maxAmount: BigDecimal.BigDecimal
  readonly dailyTurnoverLimit: BigDecimal.BigDecimal
  readonly monthlyTurnoverLimit: BigDecimal.BigDecimal
  readonly maxOrdersPerDay: number
  readonly maxOpenOrders: number
}

export interface NewRequisite {
  readonly paymentMethod: string
  readonly bankCode: string
  readonly fiatCurrency: string
  readonly details: string
  readonly holderName: string
  readonly settings: RequisiteSettings
}

export interface RequisitePatch {
  readonly details?: string | undefined
  readonly holderName?: string | undefined
  readonly status?: "active" | "inactive" | undefined
  readonly settings?: Partial<RequisiteSettings> | undefined
}

const RequisiteRow = Schema.Struct({
  id: Schema.Number,
  traderId: Schema.Number,
  status: RequisiteStatus,
  paymentMethod: Schema.String,
  bankCode: Schema.String,
  fiatCurrency: Schema.String,
  details: Schema.String,
  holderName: Schema.String,
  lastAssignedAt: Schema.NullOr(Schema.DateFromSelf),
  payinEnabled: Schema.Boolean,
  payoutEnabled: Schema.Boolean,
  minAmount: DecimalFromNumeric,
  maxAmount: DecimalFromNumeric,
  dailyTurnoverLimit: DecimalFromNumeric,
  monthlyTurnoverLimit: DecimalFromNumeric,
  maxOrdersPerDay: Schema.Number,
  maxOpenOrders: Schema.Number
})
type RequisiteRow = typeof RequisiteRow.Type
const decodeRows = Schema.decodeUnknown(Schema.Array(RequisiteRow))

export const requisiteView = (row: RequisiteRow) => ({
  id: row.id,
  status: row.status,
  paymentMethod: row.paymentMethod,
  bankCode: row.bankCode,
  fiatCurrency: row.fiatCurrency,
  details: row.details,
  holderName: row.holderName,
  lastAssignedAt: row.lastAssignedAt === null ? null : row.lastAssignedAt.toISOString(),
  settings: {
    payinEnabled: row.payinEnabled,
    payoutEnabled: row.payoutEnabled,
    minAmount: formatFiat(row.minAmount),
    maxAmount: formatFiat(row.maxAmount),
    dailyTurnoverLimit: formatFiat(row.dailyTurnoverLimit),
    monthlyTurnoverLimit: formatFiat(row.monthlyTurnoverLimit),
    maxOrdersPerDay: row.maxOrdersPerDay,
    maxOpenOrders: row.maxOpenOrders
  }
})

const checkSettings = (settings: RequisiteSettings) =>
  BigDecimal.greaterThan(settings.minAmount, settings.maxAmount)
    ? Effect.fail(new ValidationError({ field: "settings.minAmount", message: "settings.minAmount must not exceed settings.maxAmount" }))
    : BigDecimal.greaterThan(settings.dailyTurnoverLimit, settings.monthlyTurnoverLimit)
    ? Effect.fail(new ValidationError({
      field: "settings.dailyTurnoverLimit",
      message: "settings.dailyTurnoverLimit must not exceed settings.monthlyTurnoverLimit"
    }))
    : Effect.void

/** A trader's own requisites: every query is scoped by trader id, so another trader's requisite is a 404. */
export class RequisiteService extends Effect.Service<RequisiteService>()("RequisiteService", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* AuditLogger

    const selectOwned = (traderId: number, requisiteId: number | null) =>
      sql`SELECT r.id, r.trader_id, r.status, r.payment_method, r.bank_code, r.fiat_currency, r.details, r.holder_name,
                 r.last_assigned_at, s.payin_enabled, s.payout_enabled, s.min_amount, s.max_amount,
                 s.daily_turnover_limit, s.monthly_turnover_limit, s.max_orders_per_day, s.max_open_orders
          FROM requisites r JOIN full_requisites_settings s ON s.requisite_id = r.id
          WHERE r.trader_id = ${traderId} ${requisiteId === null ? sql`` : sql`AND r.id = ${requisiteId}`}
          ORDER BY r.id
          LIMIT 500`.pipe(Effect.flatMap(decodeRows))

    const getOwned = (traderId: number, requisiteId: number) =>
      selectOwned(traderId, requisiteId).pipe(
        Effect.flatMap((rows) =>
          rows[0] === undefined
            ? Effect.fail(new NotFound({ entity: "requisite", message: `requisite ${requisiteId} not found` }))
            : Effect.succeed(rows[0])
        )
      )

    const checkReference = (table: "payment_methods" | "banks" | "fiat_currencies", code: string, field: string) =>
      sql`SELECT 1 FROM ${sql(table)} WHERE code = ${code} AND is_active`.pipe(
        Effect.flatMap((rows) =>
          rows.length === 0
            ? Effect.fail(new ValidationError({ field, message: `${field} ${code} is not known` }))
            : Effect.void
        )
      )

    const list = Effect.fn("RequisiteService.list")(function*(traderId: number) {
      return (yield* selectOwned(traderId, null)).map(requisiteView)
    }, dieOnInfrastructure)

    const get = Effect.fn("RequisiteService.get")(function*(traderId: number, requisiteId: number) {
      return requisiteView(yield* getOwned(traderId, requisiteId))
    }, dieOnInfrastructure)

    const create = Effect.fn("RequisiteService.create")(function*(actor: UserPrincipal, traderId: number, input: NewRequisite) {
      yield* checkSettings(input.settings)
      yield* checkReference("payment_methods", input.paymentMethod, "paymentMethod")
      yield* checkReference("banks", input.bankCode, "bankCode")
      yield* checkReference("fiat_currencies", input.fiatCurrency, "fiatCurrency")
      return yield* atomic("requisite.create", Effect.gen(function*() {
        const [row] = yield* sql<{ id: number }>`INSERT INTO requisites ${
          sql.insert({
            traderId,
            paymentMethod: input.paymentMethod,
            bankCode: input.bankCode,
            fiatCurrency: input.fiatCurrency,
            details: input.details,
            holderName: input.holderName
          })
        } RETURNING id`
        yield* sql`INSERT INTO full_requisites_settings ${sql.insert({ requisiteId: row!.id, ...settingsRow(input.settings) })}`
        yield* audit.logAction({
          action: "requisite.created",
          userId: actor.userId,
          userRole: actor.role,
          targetEntity: "requisite",
          targetId: row!.id
        })
        return requisiteView(yield* getOwned(traderId, row!.id))
      }))
    }, dieOnInfrastructure)

    const update = Effect.fn("RequisiteService.update")(function*(actor: UserPrincipal, traderId: number, requisiteId: number, patch: RequisitePatch) {
      return yield* atomic("requisite.update", Effect.gen(function*() {
        // Lock the row: a concurrent assignment reads settings under the same lock.
        yield* sql`SELECT id FROM requisites WHERE id = ${requisiteId} AND trader_id = ${traderId} FOR UPDATE`
        const current = yield* getOwned(traderId, requisiteId)
        if (current.status === "blocked" && patch.status !== undefined) {
          return yield* new ValidationError({ field: "status", message: "a blocked requisite can only be unblocked by support" })
        }
        const settings: RequisiteSettings = { ...current, ...patch.settings }
        yield* checkSettings(settings)
        const requisiteChanges = {
          ...(patch.details === undefined ? {} : { details: patch.details }),
          ...(patch.holderName === undefined ? {} : { holderName: patch.holderName }),
          ...(patch.status === undefined ? {} : { status: patch.status })
        }
        if (Object.keys(requisiteChanges).length > 0) {
          yield* sql`UPDATE requisites SET ${sql.update(requisiteChanges)}, updated_at = now() WHERE id = ${requisiteId}`
        }
        yield* sql`UPDATE full_requisites_settings SET ${sql.update(settingsRow(settings))} WHERE requisite_id = ${requisiteId}`
        yield* audit.logAction({
          action: "requisite.updated",
          userId: actor.userId,
          userRole: actor.role,
          targetEntity: "requisite",
          targetId: requisiteId,
          details: { fields: [...Object.keys(requisiteChanges), ...Object.keys(patch.settings ?? {}).map((key) => `settings.${key}`)] }
        })
        return requisiteView(yield* getOwned(traderId, requisiteId))
      }))
    }, dieOnInfrastructure)

    const setWork = Effect.fn("RequisiteService.setWork")(function*(actor: UserPrincipal, traderId: number, inWork: boolean) {
      return yield* atomic("trader.setWork", Effect.gen(function*() {
        const rows = yield* sql<{ inWork: boolean }>`UPDATE traders SET in_work = ${inWork} WHERE id = ${traderId} AND is_active RETURNING in_work`
        if (rows[0] === undefined) return yield* new NotFound({ entity: "trader", message: "trader not found or not active" })
        yield* audit.logAction({
          action: inWork ? "trader.work_started" : "trader.work_stopped",
          userId: actor.userId,
          userRole: actor.role,
          targetEntity: "trader",
          targetId: traderId
        })
        return { inWork: rows[0].inWork }
      }))
    }, dieOnInfrastructure)

    return { list, get, create, update, setWork } as const
  }),
  dependencies: [AuditLogger.Default]
}) {}

const settingsRow = (settings: RequisiteSettings) => ({
  payinEnabled: settings.payinEnabled,
  payoutEnabled: settings.payoutEnabled,
  minAmount: formatFiat(settings.minAmount),
  maxAmount: formatFiat(settings.maxAmount),
  dailyTurnoverLimit: formatFiat(settings.dailyTurnoverLimit),
  monthlyTurnoverLimit: formatFiat(settings.monthlyTurnoverLimit),
  maxOrdersPerDay: settings.maxOrdersPerDay,
  maxOpenOrders: settings.maxOpenOrders
})

