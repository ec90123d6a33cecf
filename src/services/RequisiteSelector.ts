import { SqlClient } from "@effect/sql"
import { BigDecimal, Effect, Option, Schema } from "effect"
import { LimitExceeded, RequisiteNotFound } from "../domain/Errors.js"
import { formatPlain, Percent } from "../domain/Money.js"
import type { Direction } from "../domain/Status.js"

/**
 * RequisiteSelector (SPEC §5.2): picks the trader requisite an order is assigned to.
 *
 * It runs inside the caller's transaction and leaves the chosen requisite row locked
 * (`FOR UPDATE`) until that transaction ends. Because of that lock, two transactions can never
 * hold the same requisite at once: the second one skips it (`SKIP LOCKED`) instead of reading
 * its aggregates, so the dynamic limits checked below (turnover, orders per day, open orders)
 * cannot be overrun by concurrent assignments — whoever holds the lock sees every committed
 * order of that requisite, and nobody else can add one until it commits or rolls back.
 */

/**
 * Candidates locked per query. One, not "a few": PostgreSQL cannot release a single row lock before
 * the transaction ends, so every candidate of a locked batch stays locked for the rest of the
 * caller's transaction (fraud check, hold, inserts) even though only the first passing one is used.
 * With 5, one in-flight assignment hides up to 5 requisites from every concurrent worker, which then
 * fail with LimitExceeded although capacity exists. Measured on PostgreSQL: 10 requisites with ample
 * limits, 10 concurrent assignments of 200 orders, each transaction open 20 ms after selecting:
 * batch 5 assigned 27 and failed 173; batch 1 assigned all 200. Fetching the next fairest unlocked
 * row per query costs the same round trips on the common path (the first candidate passes).
 * Rejected candidates stay locked until the caller's transaction ends; they are full anyway.
 */
export const CANDIDATE_BATCH = 1
/** Upper bound of candidates examined for one order, across rounds. */
export const MAX_CANDIDATES = 50

export interface SelectorOrder {
  /** For logs and spans only. */
  readonly incomingOrderId: number
  readonly direction: Direction
  readonly amountFiat: BigDecimal.BigDecimal
  readonly currency: string
  readonly paymentMethod: string
  readonly bankCode: Option.Option<string>
  /** The order's amount in USDT at the current rate, computed by the caller (PayIn balance check). */
  readonly amountCrypto: BigDecimal.BigDecimal
}

export const Candidate = Schema.Struct({
  requisiteId: Schema.Number,
  traderId: Schema.Number,
  payinRewardPct: Percent,
  payoutRewardPct: Percent
})
export interface Candidate extends Schema.Schema.Type<typeof Candidate> {}

const decodeCandidates = Schema.decodeUnknown(Schema.Array(Candidate))

/** Counts behind the RequisiteNotFound reason: each column adds one more static filter. */
const StaticFunnel = Schema.Struct({
  matching: Schema.Number,
  active: Schema.Number,
  traderReady: Schema.Number,
  directionEnabled: Schema.Number,
  amountInRange: Schema.Number,
  eligible: Schema.Number
})
type StaticFunnel = typeof StaticFunnel.Type
const decodeStaticFunnel = Schema.decodeUnknown(StaticFunnel)

/** Dynamic-limit aggregates of one requisite; comparisons are done by PostgreSQL on NUMERIC. */
const LimitUsage = Schema.Struct({
  turnoverDay: Schema.String,
  turnoverMonth: Schema.String,
  ordersDay: Schema.Number,
  openOrders: Schema.Number,
  dailyTurnoverLimit: Schema.String,
  monthlyTurnoverLimit: Schema.String,
  maxOrdersPerDay: Schema.Number,
  maxOpenOrders: Schema.Number,
  dailyTurnoverOk: Schema.Boolean,
  monthlyTurnoverOk: Schema.Boolean,
  ordersPerDayOk: Schema.Boolean,
  openOrdersOk: Schema.Boolean
})
type LimitUsage = typeof LimitUsage.Type
const decodeLimitUsage = Schema.decodeUnknown(LimitUsage)

/** The first limit the order would break, as a log-friendly reason; none when all hold. */
const limitViolation = (usage: LimitUsage, amountFiat: string): Option.Option<string> => {
  if (!usage.dailyTurnoverOk) {
    return Option.some(`daily turnover ${usage.turnoverDay} + ${amountFiat} exceeds ${usage.dailyTurnoverLimit}`)
  }
  if (!usage.monthlyTurnoverOk) {
    return Option.some(`monthly turnover ${usage.turnoverMonth} + ${amountFiat} exceeds ${usage.monthlyTurnoverLimit}`)
  }
  if (!usage.ordersPerDayOk) {
    return Option.some(`orders today ${usage.ordersDay} reached max_orders_per_day ${usage.maxOrdersPerDay}`)
  }
  if (!usage.openOrdersOk) {
    return Option.some(`open orders ${usage.openOrders} reached max_open_orders ${usage.maxOpenOrders}`)
  }
  return Option.none()
}

const describeOrder = (order: SelectorOrder): string =>
  `${order.direction} ${formatPlain(order.amountFiat)} ${order.currency} by ${order.paymentMethod}` +
  Option.match(order.bankCode, { onNone: () => "", onSome: (bank) => ` (bank ${bank})` })

/** Why nothing passed the static filters: the first filter that left no requisite. */
const notFoundReason = (funnel: StaticFunnel, order: SelectorOrder): string => {
  if (funnel.matching === 0) return `no requisite for ${describeOrder(order)}`
  const of = `${funnel.matching} requisite(s) match method/currency/bank but`
  if (funnel.active === 0) return `${of} none is active`
  if (funnel.traderReady === 0) return `${of} none belongs to an active trader in work`
  if (funnel.directionEnabled === 0) return `${of} none has ${order.direction} enabled`
  if (funnel.amountInRange === 0) return `${of} none accepts amount ${formatPlain(order.amountFiat)}`
  return `${of} no trader's available balance covers ${formatPlain(order.amountCrypto)} USDT`
}

const assertOrder = (order: SelectorOrder): Effect.Effect<void> =>
  BigDecimal.isPositive(order.amountFiat) && !BigDecimal.isNegative(order.amountCrypto)
    ? Effect.void
    : Effect.dieMessage(
      `RequisiteSelector: order ${order.incomingOrderId} needs amountFiat > 0 and amountCrypto >= 0, got ` +
        `${formatPlain(order.amountFiat)} / ${formatPlain(order.amountCrypto)}`
    )

// Row locks taken outside a transaction are released at once, so selecting there would be a bug.
const assertInTransaction = Effect.flatMap(
  Effect.serviceOption(SqlClient.TransactionConnection),
  Option.match({
    onNone: () =>
      Effect.dieMessage("RequisiteSelector.findSuitableRequisite must run inside the caller's transaction (atomic)"),
    onSome: () => Effect.void
  })
)

export class RequisiteSelector extends Effect.Service<RequisiteSelector>()("RequisiteSelector", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    /**
     * The static filters as SQL fragments over `requisites r`, `full_requisites_settings s`,
     * `traders t` and `balance_traders b`, named so the "not found" funnel reuses them exactly.
     */
    const staticFilters = (order: SelectorOrder) => {
      const amountFiat = formatPlain(order.amountFiat)
      const payin = order.direction === "payin"
      return {
        matching: sql`r.payment_method = ${order.paymentMethod} AND r.fiat_currency = ${order.currency}${
          Option.match(order.bankCode, {
            onNone: () => sql``,
            onSome: (bankCode) => sql` AND r.bank_code = ${bankCode}`
          })
        }`,
        active: sql`r.status = 'active'`,
        traderReady: sql`t.is_active AND t.in_work`,
        directionEnabled: payin ? sql`s.payin_enabled` : sql`s.payout_enabled`,
        amountInRange: sql`s.min_amount <= ${amountFiat}::numeric AND ${amountFiat}::numeric <= s.max_amount`,
        // Conservative on purpose: the hold placed at assignment is A − reward (SPEC §5.5), slightly less
        // than A. Requiring the whole A never admits a trader who cannot cover the hold; it only turns
        // away one whose free balance lies in [A − reward, A). The hold itself (via `accept`) is final.
        balanceCovers: payin ? sql`b.balance - b.frozen >= ${formatPlain(order.amountCrypto)}::numeric` : sql`true`
      }
    }

    // A requisite without settings, or a trader without a balance account, is not set up: never selected.
    const candidateTables = sql`requisites r
      JOIN full_requisites_settings s ON s.requisite_id = r.id
      JOIN traders t ON t.id = r.trader_id
      JOIN balance_traders b ON b.trader_id = r.trader_id`

    /**
     * Step 1: the next unlocked candidates, fairest first (least recently assigned, then trader
     * priority, then id), locked until the caller's transaction ends. Rows held by concurrent
     * assignments are skipped, not waited for.
     */
    const lockCandidates = (order: SelectorOrder, examined: ReadonlyArray<number>, limit: number) => {
      const f = staticFilters(order)
      // Our own locks do not make SKIP LOCKED skip a row, hence the explicit exclusion of examined ids.
      return sql`SELECT r.id AS requisite_id, r.trader_id, t.payin_reward_pct, t.payout_reward_pct
        FROM ${candidateTables}
        WHERE ${f.matching} AND ${f.active} AND ${f.traderReady} AND ${f.directionEnabled}
          AND ${f.amountInRange} AND ${f.balanceCovers}
          AND r.id <> ALL(${examined}::bigint[])
        ORDER BY r.last_assigned_at ASC NULLS FIRST, t.priority DESC, r.id ASC
        LIMIT ${limit}
        FOR UPDATE OF r SKIP LOCKED`.pipe(
        // SqlError stays typed; a row that does not decode is a bug.
        Effect.flatMap((rows) => Effect.orDie(decodeCandidates(rows)))
      )
    }

    /**
     * The same filters without the lock: how many requisites each stage leaves. Answers whether the
     * world has no match at all (RequisiteNotFound) or every match is held by concurrent transactions.
     */
    const staticFunnel = (order: SelectorOrder) => {
      const f = staticFilters(order)
      return sql`SELECT
          count(*)::int AS matching,
          count(*) FILTER (WHERE ${f.active})::int AS active,
          count(*) FILTER (WHERE ${f.active} AND ${f.traderReady})::int AS trader_ready,
          count(*) FILTER (WHERE ${f.active} AND ${f.traderReady} AND ${f.directionEnabled})::int AS direction_enabled,
          count(*) FILTER (WHERE ${f.active} AND ${f.traderReady} AND ${f.directionEnabled}
            AND ${f.amountInRange})::int AS amount_in_range,
          count(*) FILTER (WHERE ${f.active} AND ${f.traderReady} AND ${f.directionEnabled}
            AND ${f.amountInRange} AND ${f.balanceCovers})::int AS eligible
        FROM ${candidateTables}
        WHERE ${f.matching}`.pipe(
        Effect.flatMap((rows) => Effect.orDie(decodeStaticFunnel(rows[0])))
      )
    }

    /**
     * Step 2: all four dynamic limits of one (locked) requisite in one query. Turnover and orders per
     * day count every order that was not cancelled or failed; open orders are those still awaiting
     * payment or confirmation, whatever their age. It must be its own statement issued after the lock:
     * under READ COMMITTED each statement takes a fresh snapshot, so it sees every order committed by
     * the previous holder of the lock (an aggregate inside the locking query would use the older
     * snapshot taken before the lock and could miss the last one). Day and month start in the
     * database session's time zone (`TimeZone`), like every `date_trunc` in the schema.
     */
    const limitUsage = (requisiteId: number, amountFiat: string) =>
      sql`SELECT
          a.turnover_day, a.turnover_month, a.orders_day, a.open_orders,
          s.daily_turnover_limit, s.monthly_turnover_limit, s.max_orders_per_day, s.max_open_orders,
          a.turnover_day + ${amountFiat}::numeric <= s.daily_turnover_limit AS daily_turnover_ok,
          a.turnover_month + ${amountFiat}::numeric <= s.monthly_turnover_limit AS monthly_turnover_ok,
          a.orders_day + 1 <= s.max_orders_per_day AS orders_per_day_ok,
          a.open_orders + 1 <= s.max_open_orders AS open_orders_ok
        FROM full_requisites_settings s
        CROSS JOIN LATERAL (
          SELECT
            COALESCE(sum(h.amount_fiat) FILTER (
              WHERE h.status NOT IN ('cancelled', 'failed') AND h.created_at >= date_trunc('day', now())), 0) AS turnover_day,
            COALESCE(sum(h.amount_fiat) FILTER (
              WHERE h.status NOT IN ('cancelled', 'failed') AND h.created_at >= date_trunc('month', now())), 0) AS turnover_month,
            count(*) FILTER (
              WHERE h.status NOT IN ('cancelled', 'failed') AND h.created_at >= date_trunc('day', now()))::int AS orders_day,
            count(*) FILTER (WHERE h.status IN ('assigned', 'pending_trader_confirmation'))::int AS open_orders
          FROM order_history h
          -- Only rows some aggregate can count, so the scan stays this month's plus the open ones
          -- (ix_order_history_requisite_created and the partial ix_order_history_open_expiry), not
          -- the requisite's whole history.
          WHERE h.requisite_id = s.requisite_id
            AND (h.created_at >= date_trunc('month', now()) OR h.status IN ('assigned', 'pending_trader_confirmation'))
        ) a
        WHERE s.requisite_id = ${requisiteId}`.pipe(
        Effect.flatMap((rows) => Effect.orDie(decodeLimitUsage(rows[0])))
      )

    const markAssigned = (requisiteId: number) =>
      sql`UPDATE requisites SET last_assigned_at = now() WHERE id = ${requisiteId}`

    const logRejected = (candidate: Candidate, reason: string) =>
      Effect.logDebug("requisite candidate rejected").pipe(
        Effect.annotateLogs({ requisiteId: candidate.requisiteId, traderId: candidate.traderId, reason })
      )

    /** Nothing could be locked: either nothing matches at all, or every match is held by someone else. */
    const failWithoutCandidates = (order: SelectorOrder) =>
      Effect.gen(function*() {
        const funnel = yield* staticFunnel(order)
        if (funnel.eligible === 0) {
          const reason = notFoundReason(funnel, order)
          yield* Effect.logInfo("no requisite matches the order").pipe(Effect.annotateLogs({ reason }))
          return yield* new RequisiteNotFound({ message: reason })
        }
        const message = `checked 0 requisites: all ${funnel.eligible} matching requisite(s) are held by concurrent assignments`
        yield* Effect.logInfo("every matching requisite is busy").pipe(Effect.annotateLogs({ reason: message }))
        return yield* new LimitExceeded({ message, checked: 0 })
      })

    /** Every candidate we could lock failed; says how many others were busy or left unexamined. */
    const failAfterCandidates = (order: SelectorOrder, checked: number, lastReason: string) =>
      Effect.gen(function*() {
        const { eligible } = yield* staticFunnel(order)
        const others = Math.max(0, eligible - checked)
        const othersNote = others === 0
          ? ""
          : checked >= MAX_CANDIDATES
          ? ` (${others} more not examined: at most ${MAX_CANDIDATES} per order)`
          : ` (${others} more held by concurrent assignments)`
        const message = `checked ${checked} requisite(s)${othersNote}, none passed; last reason: ${lastReason}`
        yield* Effect.logInfo("every candidate requisite failed its limits").pipe(Effect.annotateLogs({ reason: message }))
        return yield* new LimitExceeded({ message, checked })
      })

    const findSuitableRequisite = Effect.fn("RequisiteSelector.findSuitableRequisite")(
      function*<E = never, R = never>(
        order: SelectorOrder,
        accept?: (candidate: Candidate) => Effect.Effect<boolean, E, R>
      ) {
        yield* assertOrder(order)
        yield* assertInTransaction
        yield* Effect.annotateCurrentSpan({
          incomingOrderId: order.incomingOrderId,
          direction: order.direction,
          paymentMethod: order.paymentMethod
        })
        const amountFiat = formatPlain(order.amountFiat)
        const examined: Array<number> = []
        let lastReason = "none"

        while (examined.length < MAX_CANDIDATES) {
          const batch = yield* lockCandidates(order, examined, Math.min(CANDIDATE_BATCH, MAX_CANDIDATES - examined.length))
          if (batch.length === 0) break
          for (const candidate of batch) {
            examined.push(candidate.requisiteId)
            const violation = limitViolation(yield* limitUsage(candidate.requisiteId, amountFiat), amountFiat)
            if (Option.isSome(violation)) {
              lastReason = violation.value
              yield* logRejected(candidate, lastReason)
              continue
            }
            if (accept !== undefined && !(yield* accept(candidate))) {
              lastReason = "reserve failed (accept refused the candidate, e.g. its balance was taken by a concurrent hold)"
              yield* logRejected(candidate, lastReason)
              continue
            }
            yield* markAssigned(candidate.requisiteId)
            yield* Effect.logInfo("requisite selected").pipe(
              Effect.annotateLogs({
                requisiteId: candidate.requisiteId,
                traderId: candidate.traderId,
                checked: examined.length
              })
            )
            return candidate
          }
        }

        if (examined.length === 0) return yield* failWithoutCandidates(order)
        return yield* failAfterCandidates(order, examined.length, lastReason)
      },
      (effect, order) =>
        Effect.annotateLogs(effect, { service: "RequisiteSelector", incomingOrderId: order.incomingOrderId })
    )

    return { findSuitableRequisite }
  }),
  dependencies: []
}) {}
