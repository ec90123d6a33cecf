/**
 * FraudDetector (SPEC §5.11): decides ALLOW / DENY / REQUIRE_MANUAL_REVIEW for incoming orders and
 * confirmations, from black/white lists and velocity rules, and keeps the admin CRUD of both.
 *
 * Velocity counters live in the KeyValue store (Redis), one fixed-window counter per rule, entity
 * value and window bucket, incremented once per order at intake (`recordIncomingOrder`) and read
 * by every check. When the store is unreachable, checks count from the tables instead (slower, but
 * exact), so a Redis outage never stops decisions. Lists and rules are cached in memory for a few
 * seconds: a change made by an admin reaches other processes within `cacheTtlMs`.
 */
import { SqlClient } from "@effect/sql"
import { BigDecimal, Cause, Clock, Effect, Metric, Option, Ref, Schema } from "effect"
import { createHash } from "node:crypto"
import { isIP } from "node:net"
import { Conflict, NotFound, ValidationError } from "../domain/Errors.js"
import type { UserPrincipal } from "../domain/Principal.js"
import { DecimalFromNumeric, fiatScale, formatFiat, formatPlain, roundHalfEven } from "../domain/Money.js"
import { KeyValue } from "../layers/KeyValue.js"
import { atomic, dieOnInfrastructure, mapConstraintErrors } from "./Atomic.js"
import { AuditLogger } from "./AuditLogger.js"
import { ErrorReporter } from "./ErrorReporter.js"

// ---------------------------------------------------------------------------------------------
// Domain

export const FraudDecision = Schema.Literal("ALLOW", "DENY", "REQUIRE_MANUAL_REVIEW")
export type FraudDecision = typeof FraudDecision.Type
export const RuleEntityKind = Schema.Literal("ip", "customer_id", "store", "requisite")
export type RuleEntityKind = typeof RuleEntityKind.Type
export const RuleMetric = Schema.Literal("count", "sum")
export type RuleMetric = typeof RuleMetric.Type
export const RuleAction = Schema.Literal("deny", "review")
export type RuleAction = typeof RuleAction.Type
export const ListType = Schema.Literal("black", "white")
export type ListType = typeof ListType.Type
export const ListEntityKind = Schema.Literal("ip", "customer_id", "card", "user", "store")
export type ListEntityKind = typeof ListEntityKind.Type

export const FraudRule = Schema.Struct({
  id: Schema.Number,
  name: Schema.String,
  entityKind: RuleEntityKind,
  metric: RuleMetric,
  windowSeconds: Schema.Number,
  threshold: DecimalFromNumeric,
  action: RuleAction,
  isActive: Schema.Boolean,
  createdAt: Schema.DateFromSelf
})
export interface FraudRule extends Schema.Schema.Type<typeof FraudRule> {}

export const FraudListEntry = Schema.Struct({
  id: Schema.Number,
  listType: ListType,
  entityKind: ListEntityKind,
  value: Schema.String,
  reason: Schema.NullOr(Schema.String),
  expiresAt: Schema.NullOr(Schema.DateFromSelf),
  createdAt: Schema.DateFromSelf
})
export interface FraudListEntry extends Schema.Schema.Type<typeof FraudListEntry> {}

export interface FraudOrderInput {
  readonly incomingOrderId: number
  readonly storeId: number
  readonly amountFiat: BigDecimal.BigDecimal
  readonly customerId: string | null
  readonly clientIp: string | null
  /** Known only once a requisite is chosen; requisite rules are skipped without it. */
  readonly requisiteId?: number | null | undefined
}

export interface FraudResult {
  readonly decision: FraudDecision
  /** The rule that decided: a rule name, `blacklist:<kind>`, `whitelist:<kind>`, `fraud_detector_error`, or null. */
  readonly rule: string | null
  readonly reason: string
}

export interface ConfirmationInput {
  readonly orderId: number
  readonly incomingOrderId: number
  readonly actorRole: string
  readonly receiptPresent: boolean
}

export interface NewFraudRule {
  readonly name: string
  readonly entityKind: RuleEntityKind
  readonly metric: RuleMetric
  readonly windowSeconds: number
  readonly threshold: BigDecimal.BigDecimal
  readonly action: RuleAction
  readonly isActive?: boolean | undefined
}

export interface NewFraudListEntry {
  readonly listType: ListType
  readonly entityKind: ListEntityKind
  readonly value: string
  readonly reason?: string | null | undefined
  readonly expiresAt?: Date | null | undefined
}

export interface Page {
  readonly limit?: number | undefined
  readonly offset?: number | undefined
}

/** JSON views for the admin API: money as a decimal string, times as ISO strings. */
export const fraudRuleView = (rule: FraudRule) => ({
  id: rule.id,
  name: rule.name,
  entityKind: rule.entityKind,
  metric: rule.metric,
  windowSeconds: rule.windowSeconds,
  threshold: formatFiat(rule.threshold),
  action: rule.action,
  isActive: rule.isActive,
  createdAt: rule.createdAt.toISOString()
})

export const fraudListEntryView = (entry: FraudListEntry) => ({
  id: entry.id,
  listType: entry.listType,
  entityKind: entry.entityKind,
  value: entry.value,
  reason: entry.reason,
  expiresAt: entry.expiresAt === null ? null : entry.expiresAt.toISOString(),
  createdAt: entry.createdAt.toISOString()
})

// ---------------------------------------------------------------------------------------------
// Limits

/** How long a process trusts its copy of the rules and lists. */
export const cacheTtlMs = 10_000
/** Active rules evaluated per order; each costs one counter read. */
export const activeRulesMax = 100
/** List entries held in memory; beyond this, checks look their values up in the table instead. */
export const cachedListEntriesMax = 10_000
export const listPageSizeMax = 500
const listPageSizeDefault = 100
const ruleNamePattern = /^[a-z0-9][a-z0-9_.-]{0,63}$/
const windowSecondsMax = 2_592_000
// NUMERIC(20,2) holds 18 integer digits; 12 is far beyond any sensible threshold and catches typos.
const thresholdMax = BigDecimal.unsafeFromString("999999999999.99")
const listValueLengthMax = 256
const reasonLengthMax = 500
const counterReadConcurrency = 8

export const fraudDetectorErrorRule = "fraud_detector_error"

/** Exported for tests and dashboards. */
export const fraudDecisionsTotal = Metric.counter("jivapay_fraud_decisions_total", {
  description: "Fraud decisions by decision and stage"
})

// ---------------------------------------------------------------------------------------------
// Pure helpers

/** The one spelling of an address used both when listing it and when matching orders. */
export const normalizeIp = (ip: string): string => {
  const lower = ip.trim().toLowerCase()
  return lower.startsWith("::ffff:") && isIP(lower.slice(7)) === 4 ? lower.slice(7) : lower
}

const zero = BigDecimal.fromBigInt(0n)

const ruleEntityValue = (kind: RuleEntityKind, input: FraudOrderInput): string | null => {
  switch (kind) {
    case "ip":
      return input.clientIp === null ? null : normalizeIp(input.clientIp)
    case "customer_id":
      return input.customerId
    case "store":
      return String(input.storeId)
    case "requisite":
      return input.requisiteId === null || input.requisiteId === undefined ? null : String(input.requisiteId)
  }
}

interface ListProbe {
  readonly kind: ListEntityKind
  readonly value: string
}

const orderListProbes = (order: { storeId: number; customerId: string | null; clientIp: string | null }) => {
  const probes: Array<ListProbe> = [{ kind: "store", value: String(order.storeId) }]
  if (order.clientIp !== null) probes.push({ kind: "ip", value: normalizeIp(order.clientIp) })
  if (order.customerId !== null) probes.push({ kind: "customer_id", value: order.customerId })
  return probes
}

const listKey = (listType: ListType, kind: ListEntityKind, value: string) => `${listType}\u0000${kind}\u0000${value}`

/**
 * Counter key of one rule, entity value and fixed window bucket. The value is hashed so that keys
 * stay short and customer ids or addresses do not sit in Redis in clear.
 */
const counterKey = (rule: FraudRule, entityValue: string, nowMs: number) => {
  const bucket = Math.floor(nowMs / (rule.windowSeconds * 1000))
  const digest = createHash("sha256").update(entityValue).digest("hex").slice(0, 32)
  return `fraud:rule:${rule.id}:${bucket}:${digest}`
}

const describeRule = (rule: FraudRule, observed: BigDecimal.BigDecimal) =>
  `${rule.name}: ${rule.metric} ${formatPlain(BigDecimal.normalize(observed))} > ${formatFiat(rule.threshold)} per ${rule.windowSeconds}s of one ${rule.entityKind}`

type CounterSource = "keyvalue" | "sql"

interface RuleReading {
  readonly rule: FraudRule
  readonly observed: BigDecimal.BigDecimal
  readonly source: CounterSource
}

/** What a check decided and what it looked at (stored in fraud_checks.details). */
interface Verdict {
  readonly result: FraudResult
  readonly details: Record<string, unknown>
}

const allow = (reason: string, details: Record<string, unknown> = {}): Verdict => ({
  result: { decision: "ALLOW", rule: null, reason },
  details
})

/** DENY wins over REVIEW; among rules of one action the first (lowest id) decides. */
const decideFromReadings = (readings: ReadonlyArray<RuleReading>): Verdict => {
  const fired = readings.filter((reading) => BigDecimal.greaterThan(reading.observed, reading.rule.threshold))
  const counters = readings.map((reading) => ({
    rule: reading.rule.name,
    observed: formatPlain(BigDecimal.normalize(reading.observed)),
    threshold: formatFiat(reading.rule.threshold),
    source: reading.source,
    fired: fired.includes(reading)
  }))
  const decisive = fired.find((reading) => reading.rule.action === "deny") ?? fired[0]
  if (decisive === undefined) return allow("no rule exceeded its threshold", { counters })
  return {
    result: {
      decision: decisive.rule.action === "deny" ? "DENY" : "REQUIRE_MANUAL_REVIEW",
      rule: decisive.rule.name,
      reason: describeRule(decisive.rule, decisive.observed)
    },
    details: { counters }
  }
}

const listVerdict = (entry: FraudListEntry, decision: FraudDecision): Verdict => ({
  result: {
    decision,
    rule: `${entry.listType === "black" ? "blacklist" : "whitelist"}:${entry.entityKind}`,
    reason: `${entry.entityKind} is on the ${entry.listType}list${entry.reason === null ? "" : `: ${entry.reason}`}`
  },
  details: { listEntryId: entry.id }
})

// ---------------------------------------------------------------------------------------------
// Input validation (the HTTP schemas check shapes; these also hold for any other caller)

const invalid = (field: string, message: string) => Effect.fail(new ValidationError({ field, message: `${field} ${message}` }))

const validateRule = (input: NewFraudRule): Effect.Effect<void, ValidationError> => {
  if (!ruleNamePattern.test(input.name) || input.name === fraudDetectorErrorRule) {
    return invalid("name", "must be 1-64 lowercase letters, digits, '_', '.', '-', starting with a letter or digit")
  }
  if (!Number.isInteger(input.windowSeconds) || input.windowSeconds < 1 || input.windowSeconds > windowSecondsMax) {
    return invalid("windowSeconds", `must be an integer between 1 and ${windowSecondsMax}`)
  }
  if (!BigDecimal.isPositive(input.threshold) || BigDecimal.greaterThan(input.threshold, thresholdMax)) {
    return invalid("threshold", `must be greater than 0 and at most ${BigDecimal.format(thresholdMax)}`)
  }
  if (BigDecimal.normalize(input.threshold).scale > 2) return invalid("threshold", "must have at most 2 decimals")
  if (input.metric === "count" && BigDecimal.normalize(input.threshold).scale > 0) {
    return invalid("threshold", "must be a whole number for a count rule")
  }
  return Effect.void
}

const idPattern = /^[1-9][0-9]{0,15}$/
const cardPattern = /^[0-9A-Za-z+ -]{4,64}$/
// Control characters would make log lines and admin screens lie about what is listed.
const controlCharacterPattern = /[\u0000-\u001f\u007f]/

/** The value as it is stored and matched, or a ValidationError naming `value`. */
const normalizeListValue = (kind: ListEntityKind, raw: string): Effect.Effect<string, ValidationError> => {
  const value = raw.trim()
  if (value.length === 0 || value.length > listValueLengthMax || controlCharacterPattern.test(value)) {
    return invalid("value", `must be 1-${listValueLengthMax} printable characters`)
  }
  switch (kind) {
    case "ip":
      return isIP(value) === 0 ? invalid("value", "must be an IPv4 or IPv6 address") : Effect.succeed(normalizeIp(value))
    case "store":
    case "user":
      return idPattern.test(value) ? Effect.succeed(value) : invalid("value", `must be a ${kind} id`)
    case "card":
      return cardPattern.test(value) ? Effect.succeed(value) : invalid("value", "must be 4-64 card/account characters")
    case "customer_id":
      return Effect.succeed(value)
  }
}

const validateListEntry = (input: NewFraudListEntry, nowMs: number): Effect.Effect<string, ValidationError> => {
  if (input.reason !== undefined && input.reason !== null && input.reason.length > reasonLengthMax) {
    return invalid("reason", `must have at most ${reasonLengthMax} characters`)
  }
  if (input.expiresAt !== undefined && input.expiresAt !== null) {
    if (Number.isNaN(input.expiresAt.getTime())) return invalid("expiresAt", "must be an ISO date")
    if (input.expiresAt.getTime() <= nowMs) return invalid("expiresAt", "must be in the future")
  }
  return normalizeListValue(input.entityKind, input.value)
}

// ---------------------------------------------------------------------------------------------
// A value reloaded at most every `ttlMs`; `invalidate` also discards a load still in flight.

const makeTimedCache = <A>(ttlMs: number) =>
  Effect.map(
    Ref.make<{ readonly generation: number; readonly entry: Option.Option<{ value: A; loadedAtMs: number }> }>({
      generation: 0,
      entry: Option.none()
    }),
    (state) => ({
      get: <E, R>(load: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
        Effect.gen(function*() {
          const nowMs = yield* Clock.currentTimeMillis
          const before = yield* Ref.get(state)
          if (Option.isSome(before.entry) && nowMs - before.entry.value.loadedAtMs < ttlMs) return before.entry.value.value
          const value = yield* load
          yield* Ref.update(state, (current) =>
            current.generation === before.generation
              ? { generation: current.generation, entry: Option.some({ value, loadedAtMs: nowMs }) }
              : current)
          return value
        }),
      invalidate: Ref.update(state, (current) => ({ generation: current.generation + 1, entry: Option.none() }))
    })
  )

interface ListSnapshot {
  readonly byKey: ReadonlyMap<string, FraudListEntry>
  /** False when the table held more entries than the cache keeps: look values up in SQL instead. */
  readonly complete: boolean
}

const decodeRules = Schema.decodeUnknown(Schema.Array(FraudRule))
const decodeListEntries = Schema.decodeUnknown(Schema.Array(FraudListEntry))
const decodeAggregate = Schema.decodeUnknown(Schema.Struct({ count: Schema.Number, sum: DecimalFromNumeric }))
const decodeOrderParties = Schema.decodeUnknown(Schema.Struct({
  storeId: Schema.Number,
  customerId: Schema.NullOr(Schema.String),
  clientIp: Schema.NullOr(Schema.String)
}))

const ruleColumns = "id, name, entity_kind, metric, window_seconds, threshold, action, is_active, created_at"
const listColumns = "id, list_type, entity_kind, value, reason, expires_at, created_at"

// ---------------------------------------------------------------------------------------------

export class FraudDetector extends Effect.Service<FraudDetector>()("FraudDetector", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const keyValue = yield* KeyValue
    const audit = yield* AuditLogger
    const errorReporter = yield* ErrorReporter
    const rulesCache = yield* makeTimedCache<ReadonlyArray<FraudRule>>(cacheTtlMs)
    const listsCache = yield* makeTimedCache<ListSnapshot>(cacheTtlMs)

    // Column lists are constants of this file, never input.
    const ruleSelect = sql.literal(ruleColumns)
    const listSelect = sql.literal(listColumns)

    // ---- rules and lists, cached ------------------------------------------------------------

    const activeRules = rulesCache.get(
      sql`SELECT ${ruleSelect} FROM fraud_rules WHERE is_active ORDER BY id LIMIT ${activeRulesMax}`.pipe(
        Effect.flatMap(decodeRules)
      )
    )

    const loadListSnapshot = sql`SELECT ${listSelect} FROM fraud_lists
      WHERE expires_at IS NULL OR expires_at > now() ORDER BY id LIMIT ${cachedListEntriesMax + 1}`.pipe(
      Effect.flatMap(decodeListEntries),
      Effect.map((entries): ListSnapshot => ({
        byKey: new Map(entries.slice(0, cachedListEntriesMax).map((entry) =>
          [listKey(entry.listType, entry.entityKind, entry.value), entry] as const
        )),
        complete: entries.length <= cachedListEntriesMax
      }))
    )

    const lookUpListEntries = (listType: ListType, probes: ReadonlyArray<ListProbe>) =>
      sql`SELECT ${listSelect} FROM fraud_lists
        WHERE list_type = ${listType} AND (expires_at IS NULL OR expires_at > now())
          AND ${sql.or(probes.map((probe) => sql`(entity_kind = ${probe.kind} AND value = ${probe.value})`))}
        ORDER BY id`.pipe(Effect.flatMap(decodeListEntries))

    /** The first live entry of `listType` matching one of the probes (in probe order). */
    const findListEntry = (listType: ListType, probes: ReadonlyArray<ListProbe>) =>
      Effect.gen(function*() {
        if (probes.length === 0) return Option.none<FraudListEntry>()
        const snapshot = yield* listsCache.get(loadListSnapshot)
        const nowMs = yield* Clock.currentTimeMillis
        // The cached copy may be up to cacheTtlMs old: an entry that expired since then no longer counts.
        const isLive = (entry: FraudListEntry) => entry.expiresAt === null || entry.expiresAt.getTime() > nowMs
        const candidates = snapshot.complete
          ? probes.flatMap((probe) => {
            const entry = snapshot.byKey.get(listKey(listType, probe.kind, probe.value))
            return entry === undefined ? [] : [entry]
          })
          : yield* lookUpListEntries(listType, probes)
        return Option.fromNullable(candidates.find(isLive))
      })

    // ---- velocity counters -------------------------------------------------------------------

    const parseCounter = (raw: Option.Option<string>) =>
      Option.match(raw, {
        onNone: () => Effect.succeed(zero),
        onSome: (text) =>
          Option.match(BigDecimal.fromString(text), {
            onNone: () => Effect.fail(new Error(`velocity counter holds ${JSON.stringify(text)}`)),
            onSome: Effect.succeed
          })
      })

    /**
     * Redis adds decimals in binary floating point (INCRBYFLOAT): 1500 + 1500 + 0.01 reads back as
     * 3000.01000000000000001. Every amount added had 2 decimals, so rounding to 2 restores the exact
     * sum (the error stays far below a cent for any realistic total).
     */
    const readCounter = (rule: FraudRule, entityValue: string, nowMs: number) =>
      keyValue.get(counterKey(rule, entityValue, nowMs)).pipe(
        Effect.flatMap(parseCounter),
        Effect.map((value) => roundHalfEven(value, fiatScale))
      )

    const windowStart = (rule: FraudRule) => sql`now() - (${rule.windowSeconds}::int * interval '1 second')`

    /** count(*) and sum(amount) of the entity's orders in the window, as the counters would hold them. */
    const aggregateFromTables = (rule: FraudRule, entityValue: string, input: FraudOrderInput) => {
      const since = windowStart(rule)
      switch (rule.entityKind) {
        case "ip":
          // Both spellings: the column holds the address as the merchant sent it.
          return sql`SELECT count(*) AS count, coalesce(sum(amount), 0) AS sum FROM incoming_orders
            WHERE client_ip IN ${sql.in([...new Set([entityValue, input.clientIp ?? entityValue])])} AND created_at > ${since}`
        case "customer_id":
          return sql`SELECT count(*) AS count, coalesce(sum(amount), 0) AS sum FROM incoming_orders
            WHERE customer_id = ${entityValue} AND created_at > ${since}`
        case "store":
          return sql`SELECT count(*) AS count, coalesce(sum(amount), 0) AS sum FROM incoming_orders
            WHERE store_id = ${input.storeId} AND created_at > ${since}`
        case "requisite":
          // Assignments live in order_history; the order being checked is not there yet, so it is added.
          return sql`SELECT count(*) + 1 AS count, coalesce(sum(amount_fiat), 0) + ${formatFiat(input.amountFiat)}::numeric AS sum
            FROM order_history WHERE requisite_id = ${Number(entityValue)} AND created_at > ${since}`
      }
    }

    const readFromTables = (rule: FraudRule, entityValue: string, input: FraudOrderInput) =>
      aggregateFromTables(rule, entityValue, input).pipe(
        Effect.flatMap((rows) => decodeAggregate(rows[0])),
        Effect.map((aggregate) => rule.metric === "count" ? BigDecimal.fromBigInt(BigInt(aggregate.count)) : aggregate.sum)
      )

    interface ApplicableRule {
      readonly rule: FraudRule
      readonly entityValue: string
    }

    const applicableRules = (rules: ReadonlyArray<FraudRule>, input: FraudOrderInput): Array<ApplicableRule> =>
      rules.flatMap((rule) => {
        const entityValue = ruleEntityValue(rule.entityKind, input)
        return entityValue === null ? [] : [{ rule, entityValue }]
      })

    /**
     * Counters first, concurrently (Redis round trips only). Then, one statement at a time (they
     * share the caller's transaction connection), the tables for requisite rules, which never have a
     * counter because the requisite is chosen after intake, and for every counter that could not be read.
     */
    const readRules = (input: FraudOrderInput) =>
      Effect.gen(function*() {
        const nowMs = yield* Clock.currentTimeMillis
        const applicable = applicableRules(yield* activeRules, input)
        const fromCounters = yield* Effect.forEach(
          applicable,
          ({ entityValue, rule }) =>
            rule.entityKind === "requisite"
              ? Effect.succeed(Option.none<BigDecimal.BigDecimal>())
              : readCounter(rule, entityValue, nowMs).pipe(
                Effect.map(Option.some),
                Effect.catchAll((error) =>
                  Effect.as(Effect.logDebug("velocity counter unreadable", error.message), Option.none())
                )
              ),
          { concurrency: counterReadConcurrency }
        )
        const readings: Array<RuleReading> = []
        for (const [index, { entityValue, rule }] of applicable.entries()) {
          const counted = fromCounters[index]!
          readings.push(
            Option.isSome(counted)
              ? { rule, observed: counted.value, source: "keyvalue" }
              : { rule, observed: yield* readFromTables(rule, entityValue, input), source: "sql" }
          )
        }
        yield* logCounterSources(readings)
        return readings
      })

    const logCounterSources = (readings: ReadonlyArray<RuleReading>) => {
      const fromTables = readings.filter((reading) => reading.source === "sql" && reading.rule.entityKind !== "requisite")
      return fromTables.length === 0
        ? Effect.logDebug("fraud counters read from the key/value store", { rules: readings.length })
        : Effect.logWarning("velocity counters unavailable; counted from the tables", {
          rules: fromTables.map((reading) => reading.rule.name)
        })
    }

    // ---- decisions -----------------------------------------------------------------------------

    const evaluateIncoming = (input: FraudOrderInput) =>
      Effect.gen(function*() {
        const probes = orderListProbes(input)
        // A blacklist entry is the more specific statement: it beats a whitelisted store or address.
        const blacklisted = yield* findListEntry("black", probes)
        if (Option.isSome(blacklisted)) return listVerdict(blacklisted.value, "DENY")
        const whitelisted = yield* findListEntry("white", probes)
        if (Option.isSome(whitelisted)) return listVerdict(whitelisted.value, "ALLOW")
        return decideFromReadings(yield* readRules(input))
      })

    const evaluateConfirmation = (input: ConfirmationInput) =>
      Effect.gen(function*() {
        const rows = yield* sql`SELECT store_id, customer_id, client_ip FROM incoming_orders WHERE id = ${input.incomingOrderId}`
        if (rows.length === 0) return yield* Effect.dieMessage(`incoming order ${input.incomingOrderId} does not exist`)
        const order = yield* decodeOrderParties(rows[0])
        const probes = orderListProbes(order).filter((probe) => probe.kind !== "store")
        const context = { orderId: input.orderId, actorRole: input.actorRole, receiptPresent: input.receiptPresent }
        const blacklisted = yield* findListEntry("black", probes)
        if (Option.isNone(blacklisted)) return allow("no blacklisted party", context)
        const verdict = listVerdict(blacklisted.value, "REQUIRE_MANUAL_REVIEW")
        return { ...verdict, details: { ...verdict.details, ...context } }
      })

    type Stage = "incoming" | "confirmation"

    const storeVerdict = (stage: Stage, incomingOrderId: number, verdict: Verdict, actorRole: string | null) =>
      Effect.gen(function*() {
        const { decision, reason, rule } = verdict.result
        yield* sql`INSERT INTO fraud_checks ${
          sql.insert({
            incomingOrderId,
            stage,
            result: decision,
            rule,
            details: JSON.stringify({ reason, ...verdict.details })
          })
        }`
        yield* audit.logAction({
          action: "fraud.decision",
          userRole: actorRole,
          targetEntity: "incoming_order",
          targetId: incomingOrderId,
          details: { stage, decision, rule, reason }
        })
      })

    /** Counted, and DENY / REVIEW announced: the log line is the operators' notification. */
    const announce = (stage: Stage, incomingOrderId: number, result: FraudResult) =>
      Effect.gen(function*() {
        yield* Metric.update(fraudDecisionsTotal.pipe(Metric.tagged("decision", result.decision), Metric.tagged("stage", stage)), 1)
        if (result.decision === "ALLOW") return
        yield* Effect.logWarning("fraud check held an order", result.reason).pipe(
          Effect.annotateLogs({ incomingOrderId, fraudStage: stage, fraudDecision: result.decision, fraudRule: result.rule })
        )
      })

    /**
     * When the detector itself breaks, the order goes to a human: failing open would let fraud
     * through during an outage, denying would fail honest customers for our fault.
     */
    const failClosed = (stage: Stage, incomingOrderId: number, cause: Cause.Cause<unknown>, actorRole: string | null) =>
      Effect.gen(function*() {
        yield* errorReporter.reportCriticalError(cause, { component: "FraudDetector", stage, incomingOrderId })
        const verdict: Verdict = {
          result: { decision: "REQUIRE_MANUAL_REVIEW", rule: fraudDetectorErrorRule, reason: "the fraud check failed; see the error log" },
          details: {}
        }
        yield* sql.withTransaction(storeVerdict(stage, incomingOrderId, verdict, actorRole)).pipe(
          Effect.catchAllCause((storeCause) => Effect.logError("could not store the fail-closed fraud decision", storeCause))
        )
        return verdict.result
      })

    /**
     * Evaluates and stores in a savepoint of the caller's transaction (or a transaction of its own):
     * a failed statement here rolls back only the check, and the caller's transaction stays usable.
     */
    const decide = <E, R>(
      stage: Stage,
      incomingOrderId: number,
      evaluate: Effect.Effect<Verdict, E, R>,
      actorRole: string | null
    ) =>
      sql.withTransaction(
        Effect.tap(evaluate, (verdict) => storeVerdict(stage, incomingOrderId, verdict, actorRole))
      ).pipe(
        Effect.map((verdict) => verdict.result),
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause) ? Effect.interrupt : failClosed(stage, incomingOrderId, cause, actorRole)
        ),
        Effect.tap((result) => announce(stage, incomingOrderId, result))
      )

    const checkIncomingOrder = Effect.fn("FraudDetector.checkIncomingOrder")(function*(input: FraudOrderInput) {
      return yield* decide("incoming", input.incomingOrderId, evaluateIncoming(input), null)
    })

    const checkOrderConfirmation = Effect.fn("FraudDetector.checkOrderConfirmation")(function*(input: ConfirmationInput) {
      return yield* decide("confirmation", input.incomingOrderId, evaluateConfirmation(input), input.actorRole)
    })

    /** Counts the order once, at intake. Never fails: without counters the checks count from the tables. */
    const recordIncomingOrder = Effect.fn("FraudDetector.recordIncomingOrder")(function*(input: FraudOrderInput) {
      const rules = yield* activeRules
      const nowMs = yield* Clock.currentTimeMillis
      const counted = rules.flatMap((rule) => {
        const entityValue = ruleEntityValue(rule.entityKind, input)
        return rule.entityKind === "requisite" || entityValue === null ? [] : [{ rule, entityValue }]
      })
      yield* Effect.forEach(counted, ({ entityValue, rule }) => {
        const key = counterKey(rule, entityValue, nowMs)
        const ttlMs = rule.windowSeconds * 1000
        return rule.metric === "count"
          ? Effect.asVoid(keyValue.increment(key, 1, ttlMs))
          : Effect.asVoid(keyValue.incrementFloat(key, formatFiat(input.amountFiat), ttlMs))
      }, { concurrency: counterReadConcurrency, discard: true })
    }, (effect, input) =>
      effect.pipe(
        Effect.catchTag("KeyValueError", (error) =>
          Effect.logWarning("velocity counters not updated; checks will count from the tables", error.message)),
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause)
            ? Effect.interrupt
            : errorReporter.reportCriticalError(cause, {
              component: "FraudDetector.recordIncomingOrder",
              incomingOrderId: input.incomingOrderId
            })
        )
      ))

    // ---- admin CRUD ------------------------------------------------------------------------------

    const listRules = Effect.fn("FraudDetector.listRules")(function*() {
      const rows = yield* sql`SELECT ${ruleSelect} FROM fraud_rules ORDER BY id LIMIT ${listPageSizeMax}`
      return yield* decodeRules(rows)
    }, dieOnInfrastructure)

    const createRule = Effect.fn("FraudDetector.createRule")(
      function*(input: NewFraudRule, actor: UserPrincipal, ipAddress: string | null) {
        yield* validateRule(input)
        const rule = yield* atomic(
          "fraud.createRule",
          Effect.gen(function*() {
            const rows = yield* sql`INSERT INTO fraud_rules ${
              sql.insert({
                name: input.name,
                entityKind: input.entityKind,
                metric: input.metric,
                windowSeconds: input.windowSeconds,
                threshold: formatFiat(input.threshold),
                action: input.action,
                isActive: input.isActive ?? true
              })
            } RETURNING ${ruleSelect}`
            const [created] = yield* decodeRules(rows)
            yield* audit.logAction({
              action: "fraud.rule_created",
              userId: actor.userId,
              userRole: actor.role,
              targetEntity: "fraud_rule",
              targetId: created!.id,
              details: fraudRuleView(created!),
              ipAddress
            })
            return created!
          })
        ).pipe(mapConstraintErrors("fraud rule"))
        yield* rulesCache.invalidate
        return rule
      },
      dieOnInfrastructure
    )

    const deleteRule = Effect.fn("FraudDetector.deleteRule")(
      function*(id: number, actor: UserPrincipal, ipAddress: string | null) {
        yield* atomic(
          "fraud.deleteRule",
          Effect.gen(function*() {
            const [deleted] = yield* decodeRules(yield* sql`DELETE FROM fraud_rules WHERE id = ${id} RETURNING ${ruleSelect}`)
            if (deleted === undefined) return yield* new NotFound({ entity: "fraud rule", message: `fraud rule ${id} not found` })
            yield* audit.logAction({
              action: "fraud.rule_deleted",
              userId: actor.userId,
              userRole: actor.role,
              targetEntity: "fraud_rule",
              targetId: id,
              details: fraudRuleView(deleted),
              ipAddress
            })
          })
        )
        yield* rulesCache.invalidate
      },
      dieOnInfrastructure
    )

    const listEntries = Effect.fn("FraudDetector.listEntries")(function*(page: Page) {
      const limit = Math.min(Math.max(page.limit ?? listPageSizeDefault, 1), listPageSizeMax)
      const offset = Math.max(page.offset ?? 0, 0)
      const rows = yield* sql`SELECT ${listSelect} FROM fraud_lists ORDER BY id LIMIT ${limit} OFFSET ${offset}`
      const totals = yield* sql<{ total: number }>`SELECT count(*) AS total FROM fraud_lists`
      return { items: yield* decodeListEntries(rows), total: totals[0]!.total }
    }, dieOnInfrastructure)

    const createListEntry = Effect.fn("FraudDetector.createListEntry")(
      function*(input: NewFraudListEntry, actor: UserPrincipal, ipAddress: string | null) {
        const value = yield* validateListEntry(input, yield* Clock.currentTimeMillis)
        const entry = yield* atomic(
          "fraud.createListEntry",
          Effect.gen(function*() {
            // An expired entry for the same value is replaced; a live one is a conflict.
            const rows = yield* sql`INSERT INTO fraud_lists ${
              sql.insert({
                listType: input.listType,
                entityKind: input.entityKind,
                value,
                reason: input.reason ?? null,
                expiresAt: input.expiresAt ?? null
              })
            } ON CONFLICT (list_type, entity_kind, value) DO UPDATE
                SET reason = EXCLUDED.reason, expires_at = EXCLUDED.expires_at, created_at = now()
                WHERE fraud_lists.expires_at IS NOT NULL AND fraud_lists.expires_at <= now()
              RETURNING ${listSelect}`
            const [created] = yield* decodeListEntries(rows)
            if (created === undefined) {
              return yield* new Conflict({
                entity: "fraud list entry",
                message: `the ${input.listType}list already has this ${input.entityKind}`
              })
            }
            yield* audit.logAction({
              action: "fraud.list_entry_created",
              userId: actor.userId,
              userRole: actor.role,
              targetEntity: "fraud_list",
              targetId: created.id,
              details: fraudListEntryView(created),
              ipAddress
            })
            return created
          })
        ).pipe(mapConstraintErrors("fraud list entry"))
        yield* listsCache.invalidate
        return entry
      },
      dieOnInfrastructure
    )

    const deleteListEntry = Effect.fn("FraudDetector.deleteListEntry")(
      function*(id: number, actor: UserPrincipal, ipAddress: string | null) {
        yield* atomic(
          "fraud.deleteListEntry",
          Effect.gen(function*() {
            const [deleted] = yield* decodeListEntries(yield* sql`DELETE FROM fraud_lists WHERE id = ${id} RETURNING ${listSelect}`)
            if (deleted === undefined) {
              return yield* new NotFound({ entity: "fraud list entry", message: `fraud list entry ${id} not found` })
            }
            yield* audit.logAction({
              action: "fraud.list_entry_deleted",
              userId: actor.userId,
              userRole: actor.role,
              targetEntity: "fraud_list",
              targetId: id,
              details: fraudListEntryView(deleted),
              ipAddress
            })
          })
        )
        yield* listsCache.invalidate
      },
      dieOnInfrastructure
    )

    return {
      recordIncomingOrder,
      checkIncomingOrder,
      checkOrderConfirmation,
      listRules,
      createRule,
      deleteRule,
      listEntries,
      createListEntry,
      deleteListEntry
    } as const
  }),
  dependencies: [AuditLogger.Default, ErrorReporter.Default]
}) {}
