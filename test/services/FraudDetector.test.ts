import { SqlClient } from "@effect/sql"
import { afterAll, expect, layer } from "@effect/vitest"
import { BigDecimal, Effect, Exit, Layer, Metric } from "effect"
import { Redis } from "ioredis"
import { randomBytes } from "node:crypto"
import type { UserId } from "../../src/domain/Ids.js"
import type { UserPrincipal } from "../../src/domain/Principal.js"
import { KeyValue } from "../../src/layers/KeyValue.js"
import { atomic } from "../../src/services/Atomic.js"
import { AuditLogger } from "../../src/services/AuditLogger.js"
import { ErrorReporter, ReportedErrors } from "../../src/services/ErrorReporter.js"
import {
  FraudDetector,
  fraudDecisionsTotal,
  type FraudOrderInput,
  type NewFraudListEntry,
  type NewFraudRule
} from "../../src/services/FraudDetector.js"
import { createIncomingOrder, createRequisite, createStore, createTrader, insertOrderHistory } from "../support/fixtures.js"
import { testRedisUrl } from "../support/env.js"
import { TestDatabaseLive } from "../support/TestDatabase.js"

// A fresh prefix per run keeps parallel runs apart and lets cleanup find every counter this run wrote.
const redisKeyPrefix = `test:fraud:${Date.now()}:${randomBytes(4).toString("hex")}:`

afterAll(async () => {
  const redis = new Redis(testRedisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000 })
  redis.on("error", () => undefined)
  try {
    await redis.connect()
    for await (const keys of redis.scanStream({ match: `${redisKeyPrefix}*`, count: 500 })) {
      if ((keys as Array<string>).length > 0) await redis.del(...(keys as Array<string>))
    }
  } finally {
    redis.disconnect()
  }
})

const detectorLayer = (keyValue: Layer.Layer<KeyValue>) =>
  FraudDetector.DefaultWithoutDependencies.pipe(
    Layer.provideMerge(Layer.mergeAll(AuditLogger.Default, ErrorReporter.Test, keyValue)),
    Layer.provideMerge(TestDatabaseLive())
  )

const decimal = BigDecimal.unsafeFromString
const unique = () => randomBytes(4).toString("hex")
const uniqueIp = () => `10.${[0, 1, 2].map(() => Math.floor(Math.random() * 250) + 1).join(".")}`
const uniqueCustomer = () => `customer-${unique()}`

const admin: UserPrincipal = { userId: 1 as UserId, role: "admin", sessionId: 0, merchantId: null, traderId: null }

interface OrderSpec {
  readonly storeId: number
  readonly amount?: string
  readonly customerId?: string | null
  readonly clientIp?: string | null
  readonly requisiteId?: number | null
}

/** Intake as the merchant API does it (insert, then count), then the worker's check. */
const submitOrder = (spec: OrderSpec) =>
  Effect.gen(function*() {
    const detector = yield* FraudDetector
    const amount = spec.amount ?? "1500.00"
    const customerId = spec.customerId ?? null
    const clientIp = spec.clientIp ?? null
    const incomingOrderId = yield* createIncomingOrder({ storeId: spec.storeId, amount, customerId, clientIp })
    const order: FraudOrderInput = {
      incomingOrderId,
      storeId: spec.storeId,
      amountFiat: decimal(amount),
      customerId,
      clientIp,
      requisiteId: spec.requisiteId ?? null
    }
    yield* detector.recordIncomingOrder(order)
    const result = yield* atomic("test.fraudCheck", detector.checkIncomingOrder(order))
    return { incomingOrderId, result }
  })

const submitOrders = (count: number, spec: OrderSpec) =>
  Effect.forEach(Array.from({ length: count }, () => spec), submitOrder)

const decisionsOf = (submitted: ReadonlyArray<{ readonly result: { readonly decision: string } }>) =>
  submitted.map(({ result }) => result.decision)

/** A rule that exists only for the body: rules are global, the next test must not see it. */
const withRules = <A, E, R>(rules: ReadonlyArray<Omit<NewFraudRule, "name">>, body: (names: ReadonlyArray<string>) => Effect.Effect<A, E, R>) =>
  Effect.flatMap(FraudDetector, (detector) =>
    Effect.acquireUseRelease(
      Effect.forEach(rules, (rule) => detector.createRule({ ...rule, name: `test_${rule.entityKind}_${unique()}` }, admin, null)),
      (created) => body(created.map((rule) => rule.name)),
      (created) => Effect.forEach(created, (rule) => Effect.orDie(detector.deleteRule(rule.id, admin, null)))
    ))

const addListEntry = (entry: NewFraudListEntry) =>
  Effect.flatMap(FraudDetector, (detector) => detector.createListEntry(entry, admin, null))

const fraudChecksOf = (incomingOrderIds: ReadonlyArray<number>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ incomingOrderId: number; stage: string; result: string; rule: string | null; details: any }>`
      SELECT incoming_order_id, stage, result, rule, details FROM fraud_checks
      WHERE incoming_order_id IN ${sql.in(incomingOrderIds)} ORDER BY id`)

const decisionAuditsOf = (incomingOrderIds: ReadonlyArray<number>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ targetId: string; details: any }>`
      SELECT target_id, details FROM audit_logs
      WHERE action = 'fraud.decision' AND target_entity = 'incoming_order'
        AND target_id IN ${sql.in(incomingOrderIds.map(String))} ORDER BY id`)

const decisionCount = (decision: string) =>
  Effect.map(
    Metric.value(fraudDecisionsTotal.pipe(Metric.tagged("decision", decision), Metric.tagged("stage", "incoming"))),
    (state) => state.count
  )

// ---------------------------------------------------------------------------------------------

layer(detectorLayer(KeyValue.layerRedis(testRedisUrl, { keyPrefix: redisKeyPrefix })), { excludeTestServices: true })(
  "FraudDetector on PostgreSQL and Redis",
  (it) => {
    it.effect("the default rules allow ordinary traffic; every decision is stored and audited", () =>
      Effect.gen(function*() {
        const { storeId } = yield* createStore()
        const allowedBefore = yield* decisionCount("ALLOW")
        const submitted = yield* submitOrders(5, { storeId, clientIp: uniqueIp(), customerId: uniqueCustomer() })
        expect(submitted.map(({ result }) => result)).toEqual(
          Array(5).fill({ decision: "ALLOW", rule: null, reason: "no rule exceeded its threshold" })
        )
        const ids = submitted.map(({ incomingOrderId }) => incomingOrderId)
        const checks = yield* fraudChecksOf(ids)
        expect(checks.map((check) => [check.stage, check.result, check.rule])).toEqual(Array(5).fill(["incoming", "ALLOW", null]))
        // The three default rules were read from Redis; the fifth order saw count 5 on its address.
        const counters = checks[4]!.details.counters as Array<{ rule: string; observed: string; source: string }>
        expect(counters.map((counter) => counter.source)).toEqual(["keyvalue", "keyvalue", "keyvalue"])
        expect(counters.find((counter) => counter.rule === "ip_orders_per_minute")?.observed).toBe("5")
        expect(counters.find((counter) => counter.rule === "customer_amount_per_day")?.observed).toBe("7500")
        const audits = yield* decisionAuditsOf(ids)
        expect(audits).toHaveLength(5)
        expect(audits[0]!.details).toMatchObject({ stage: "incoming", decision: "ALLOW", rule: null })
        expect((yield* decisionCount("ALLOW")) - allowedBefore).toBe(5)
      }))

    it.effect("a count rule asks for review once an address exceeds its threshold", () =>
      withRules([{ entityKind: "ip", metric: "count", windowSeconds: 60, threshold: decimal("3"), action: "review" }], ([name]) =>
        Effect.gen(function*() {
          const { storeId } = yield* createStore()
          const clientIp = uniqueIp()
          const submitted = yield* submitOrders(4, { storeId, clientIp })
          expect(decisionsOf(submitted)).toEqual(["ALLOW", "ALLOW", "ALLOW", "REQUIRE_MANUAL_REVIEW"])
          const review = submitted[3]!.result
          expect(review.rule).toBe(name)
          expect(review.reason).toContain("count 4 > 3.00")
          // Another address is not affected by this one's burst.
          expect((yield* submitOrder({ storeId, clientIp: uniqueIp() })).result.decision).toBe("ALLOW")
          const checks = yield* fraudChecksOf([submitted[3]!.incomingOrderId])
          expect(checks[0]).toMatchObject({ result: "REQUIRE_MANUAL_REVIEW", rule: name })
        })))

    it.effect("a sum rule compares exact decimal sums per customer", () =>
      withRules(
        [{ entityKind: "customer_id", metric: "sum", windowSeconds: 3600, threshold: decimal("3000.00"), action: "review" }],
        ([name]) =>
          Effect.gen(function*() {
            const { storeId } = yield* createStore()
            const customerId = uniqueCustomer()
            const first = yield* submitOrder({ storeId, customerId, amount: "1500.00" })
            const second = yield* submitOrder({ storeId, customerId, amount: "1500.00" })
            const third = yield* submitOrder({ storeId, customerId, amount: "0.01" })
            expect(decisionsOf([first, second, third])).toEqual(["ALLOW", "ALLOW", "REQUIRE_MANUAL_REVIEW"])
            expect(third.result.rule).toBe(name)
            expect(third.result.reason).toContain("sum 3000.01 > 3000.00")
          })
      ))

    it.effect("a deny rule denies, and DENY wins over REVIEW when both fire", () =>
      withRules(
        [
          { entityKind: "ip", metric: "count", windowSeconds: 60, threshold: decimal("1"), action: "review" },
          { entityKind: "ip", metric: "count", windowSeconds: 60, threshold: decimal("2"), action: "deny" }
        ],
        ([reviewRule, denyRule]) =>
          Effect.gen(function*() {
            const { storeId } = yield* createStore()
            const submitted = yield* submitOrders(3, { storeId, clientIp: uniqueIp() })
            expect(decisionsOf(submitted)).toEqual(["ALLOW", "REQUIRE_MANUAL_REVIEW", "DENY"])
            expect(submitted[1]!.result.rule).toBe(reviewRule)
            expect(submitted[2]!.result.rule).toBe(denyRule)
          })
      ))

    it.effect("requisite rules count assignments from order_history", () =>
      withRules([{ entityKind: "requisite", metric: "count", windowSeconds: 3600, threshold: decimal("1"), action: "review" }], ([name]) =>
        Effect.gen(function*() {
          const { storeId } = yield* createStore()
          const { traderId } = yield* createTrader()
          const requisiteId = yield* createRequisite(traderId)
          expect((yield* submitOrder({ storeId, requisiteId })).result.decision).toBe("ALLOW")
          yield* insertOrderHistory({ storeId, traderId, requisiteId })
          const second = yield* submitOrder({ storeId, requisiteId })
          expect(second.result).toMatchObject({ decision: "REQUIRE_MANUAL_REVIEW", rule: name })
          // Without a requisite (at intake) the rule does not apply.
          expect((yield* submitOrder({ storeId })).result.decision).toBe("ALLOW")
        })))

    it.effect("blacklisted addresses and customers are denied, even from a whitelisted store", () =>
      Effect.gen(function*() {
        const { storeId } = yield* createStore()
        const blockedIp = uniqueIp()
        const blockedCustomer = uniqueCustomer()
        yield* addListEntry({ listType: "black", entityKind: "ip", value: blockedIp, reason: "chargebacks" })
        yield* addListEntry({ listType: "black", entityKind: "customer_id", value: blockedCustomer })
        yield* addListEntry({ listType: "white", entityKind: "store", value: String(storeId) })

        // The IPv4-mapped IPv6 spelling of the same address matches too.
        const byIp = yield* submitOrder({ storeId, clientIp: `::ffff:${blockedIp}` })
        expect(byIp.result).toEqual({ decision: "DENY", rule: "blacklist:ip", reason: "ip is on the blacklist: chargebacks" })
        const byCustomer = yield* submitOrder({ storeId, customerId: blockedCustomer, clientIp: uniqueIp() })
        expect(byCustomer.result).toMatchObject({ decision: "DENY", rule: "blacklist:customer_id" })
        const clean = yield* submitOrder({ storeId, customerId: uniqueCustomer(), clientIp: uniqueIp() })
        expect(clean.result).toMatchObject({ decision: "ALLOW", rule: "whitelist:store" })
        const checks = yield* fraudChecksOf([byIp.incomingOrderId])
        expect(checks[0]).toMatchObject({ stage: "incoming", result: "DENY", rule: "blacklist:ip" })
      }))

    it.effect("a whitelist entry overrides a rule that would fire", () =>
      withRules([{ entityKind: "ip", metric: "count", windowSeconds: 60, threshold: decimal("1"), action: "deny" }], ([name]) =>
        Effect.gen(function*() {
          const { storeId } = yield* createStore()
          const clientIp = uniqueIp()
          const trusted = uniqueCustomer()
          yield* addListEntry({ listType: "white", entityKind: "customer_id", value: trusted })
          const submitted = yield* submitOrders(3, { storeId, clientIp, customerId: trusted })
          expect(submitted.map(({ result }) => result.rule)).toEqual(Array(3).fill("whitelist:customer_id"))
          expect(decisionsOf(submitted)).toEqual(["ALLOW", "ALLOW", "ALLOW"])
          // Whitelisted orders still count: a stranger on the same address is over the limit.
          const stranger = yield* submitOrder({ storeId, clientIp, customerId: uniqueCustomer() })
          expect(stranger.result).toMatchObject({ decision: "DENY", rule: name })
        })))

    it.effect("expired list entries are ignored, also while the cache still holds them", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const detector = yield* FraudDetector
        const { storeId } = yield* createStore()
        const longExpiredIp = uniqueIp()
        yield* sql`INSERT INTO fraud_lists ${
          sql.insert({ listType: "black", entityKind: "ip", value: longExpiredIp, expiresAt: new Date(Date.now() - 60_000) })
        }`
        expect((yield* submitOrder({ storeId, clientIp: longExpiredIp })).result.decision).toBe("ALLOW")

        const shortLivedIp = uniqueIp()
        yield* addListEntry({ listType: "black", entityKind: "ip", value: shortLivedIp, expiresAt: new Date(Date.now() + 1_500) })
        expect((yield* submitOrder({ storeId, clientIp: shortLivedIp })).result.decision).toBe("DENY")
        yield* Effect.sleep("1700 millis")
        expect((yield* submitOrder({ storeId, clientIp: shortLivedIp })).result.decision).toBe("ALLOW")

        // An expired entry may be listed again; a past expiry is refused.
        const renewed = yield* addListEntry({ listType: "black", entityKind: "ip", value: longExpiredIp })
        expect(renewed.expiresAt).toBeNull()
        expect((yield* submitOrder({ storeId, clientIp: longExpiredIp })).result.decision).toBe("DENY")
        const past = yield* Effect.exit(
          detector.createListEntry({ listType: "black", entityKind: "ip", value: uniqueIp(), expiresAt: new Date(Date.now() - 1) }, admin, null)
        )
        expect(past).toMatchObject(Exit.fail({ _tag: "ValidationError", field: "expiresAt" }))
      }))

    it.effect("the confirmation check sends blacklisted parties to review and stores stage 'confirmation'", () =>
      Effect.gen(function*() {
        const detector = yield* FraudDetector
        const { storeId } = yield* createStore()
        const customerId = uniqueCustomer()
        const suspicious = yield* submitOrder({ storeId, customerId })
        const ordinary = yield* submitOrder({ storeId, customerId: uniqueCustomer() })
        yield* addListEntry({ listType: "black", entityKind: "customer_id", value: customerId })

        const confirm = (incomingOrderId: number) =>
          detector.checkOrderConfirmation({ orderId: 1, incomingOrderId, actorRole: "trader", receiptPresent: true })
        expect(yield* confirm(suspicious.incomingOrderId)).toMatchObject({
          decision: "REQUIRE_MANUAL_REVIEW",
          rule: "blacklist:customer_id"
        })
        expect((yield* confirm(ordinary.incomingOrderId)).decision).toBe("ALLOW")
        const checks = yield* fraudChecksOf([suspicious.incomingOrderId])
        expect(checks.map((check) => [check.stage, check.result])).toEqual([
          ["incoming", "ALLOW"],
          ["confirmation", "REQUIRE_MANUAL_REVIEW"]
        ])
        expect(checks[1]!.details).toMatchObject({ actorRole: "trader", receiptPresent: true })
      }))

    it.effect("an unexpected failure fails closed to review, is reported, and leaves the caller's transaction usable", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const detector = yield* FraudDetector
        const reported = yield* ReportedErrors
        yield* reported.clear
        const missingOrderId = 987_654_321
        const { afterwards, result } = yield* atomic(
          "test.failClosed",
          Effect.gen(function*() {
            const result = yield* detector.checkOrderConfirmation({
              orderId: 1,
              incomingOrderId: missingOrderId,
              actorRole: "trader",
              receiptPresent: false
            })
            const afterwards = yield* sql<{ one: number }>`SELECT 1 AS one`
            return { afterwards, result }
          })
        )
        expect(result).toMatchObject({ decision: "REQUIRE_MANUAL_REVIEW", rule: "fraud_detector_error" })
        expect(afterwards).toEqual([{ one: 1 }])
        const reports = yield* reported.all
        expect(reports).toHaveLength(1)
        expect(reports[0]).toMatchObject({ kind: "critical_error", context: { component: "FraudDetector", incomingOrderId: missingOrderId } })
      }))

    it.effect("admin changes are validated, conflicts are typed, and each change is audited", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const detector = yield* FraudDetector
        const name = `rule_${unique()}`
        const rule = { name, entityKind: "store", metric: "count", windowSeconds: 60, threshold: decimal("1000"), action: "review" } as const
        const created = yield* detector.createRule(rule, admin, "127.0.0.1")
        expect(yield* Effect.exit(detector.createRule(rule, admin, null))).toMatchObject(Exit.fail({ _tag: "Conflict" }))
        const fractionalCount = yield* Effect.exit(detector.createRule({ ...rule, name: `${name}_b`, threshold: decimal("2.5") }, admin, null))
        expect(fractionalCount).toMatchObject(Exit.fail({ _tag: "ValidationError", field: "threshold" }))
        const badIp = yield* Effect.exit(addListEntry({ listType: "black", entityKind: "ip", value: "999.1.1.1" }))
        expect(badIp).toMatchObject(Exit.fail({ _tag: "ValidationError", field: "value" }))
        const entryValue = uniqueCustomer()
        yield* addListEntry({ listType: "black", entityKind: "customer_id", value: entryValue })
        const duplicate = yield* Effect.exit(addListEntry({ listType: "black", entityKind: "customer_id", value: entryValue }))
        expect(duplicate).toMatchObject(Exit.fail({ _tag: "Conflict" }))
        yield* detector.deleteRule(created.id, admin, null)
        expect(yield* Effect.exit(detector.deleteRule(created.id, admin, null))).toMatchObject(Exit.fail({ _tag: "NotFound" }))
        const audits = yield* sql<{ action: string; ipAddress: string | null }>`
          SELECT action, ip_address FROM audit_logs WHERE target_entity = 'fraud_rule' AND target_id = ${String(created.id)} ORDER BY id`
        expect(audits).toEqual([
          { action: "fraud.rule_created", ipAddress: "127.0.0.1" },
          { action: "fraud.rule_deleted", ipAddress: null }
        ])
      }))
  }
)

// Port 1 refuses connections: every KeyValue call fails, as during a Redis outage.
layer(detectorLayer(KeyValue.layerRedis("redis://127.0.0.1:1")), { excludeTestServices: true })(
  "FraudDetector with Redis down",
  (it) => {
    it.effect("intake does not fail and decisions come from the SQL fallback", () =>
      withRules(
        [
          { entityKind: "ip", metric: "count", windowSeconds: 60, threshold: decimal("2"), action: "review" },
          { entityKind: "customer_id", metric: "sum", windowSeconds: 3600, threshold: decimal("2500.00"), action: "deny" }
        ],
        ([countRule, sumRule]) =>
          Effect.gen(function*() {
            const { storeId } = yield* createStore()
            const reported = yield* ReportedErrors
            const clientIp = uniqueIp()
            const byIp = yield* submitOrders(3, { storeId, clientIp })
            expect(decisionsOf(byIp)).toEqual(["ALLOW", "ALLOW", "REQUIRE_MANUAL_REVIEW"])
            expect(byIp[2]!.result.rule).toBe(countRule)

            const customerId = uniqueCustomer()
            const byCustomer = yield* submitOrders(2, { storeId, customerId, clientIp: uniqueIp() })
            expect(decisionsOf(byCustomer)).toEqual(["ALLOW", "DENY"])
            expect(byCustomer[1]!.result).toMatchObject({ rule: sumRule })
            expect(byCustomer[1]!.result.reason).toContain("sum 3000 > 2500.00")

            const checks = yield* fraudChecksOf([byIp[2]!.incomingOrderId])
            const sources = (checks[0]!.details.counters as Array<{ source: string }>).map((counter) => counter.source)
            expect(new Set(sources)).toEqual(new Set(["sql"]))
            // A Redis outage is expected operation, not a critical error.
            expect(yield* reported.all).toEqual([])
          })
      ))

    it.effect("ordinary traffic is still allowed by the default rules", () =>
      Effect.gen(function*() {
        const { storeId } = yield* createStore()
        const submitted = yield* submitOrders(5, { storeId, clientIp: uniqueIp(), customerId: uniqueCustomer() })
        expect(decisionsOf(submitted)).toEqual(Array(5).fill("ALLOW"))
      }))
  }
)
