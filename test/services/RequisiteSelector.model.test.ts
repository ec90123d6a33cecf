import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { BigDecimal, Cause, Effect, Exit, Layer, Logger, LogLevel, Option, Runtime } from "effect"
import fc from "fast-check"
import { formatCrypto, formatFiat } from "../../src/domain/Money.js"
import type { Direction, OrderStatus, RequisiteStatus } from "../../src/domain/Status.js"
import { atomic } from "../../src/services/Atomic.js"
import { MAX_CANDIDATES, RequisiteSelector } from "../../src/services/RequisiteSelector.js"
import {
  createRequisite,
  createStore,
  createTrader,
  databaseClock,
  ensureFiatCurrency,
  insertOrderHistory,
  resetBusinessTables
} from "../support/fixtures.js"
import { TestDatabaseLive } from "../support/TestDatabase.js"

/**
 * The selector against a plain model: a small random world and order, a filter + sort + scan in
 * TypeScript that predicts NotFound, LimitExceeded or the exact requisite chosen, and the real
 * selector on PostgreSQL must agree. Money in the model is integer cents / micro-USDT, so it is exact.
 */

// ---------------------------------------------------------------------------------------------
// The world

type When = "today" | "month" | "old"

interface TraderSpec {
  readonly isActive: boolean
  readonly inWork: boolean
  readonly priority: number
  readonly balanceMicros: number
  readonly frozenMicros: number
}

interface RequisiteSpec {
  readonly traderIndex: number
  readonly paymentMethod: string
  readonly bankCode: string
  readonly fiatCurrency: string
  readonly status: RequisiteStatus
  /** Minutes before the run's start; none = never assigned. Small range so ties happen. */
  readonly lastAssignedMinutesAgo: number | null
  readonly payinEnabled: boolean
  readonly payoutEnabled: boolean
  readonly minCents: number
  readonly maxCents: number
  readonly dailyLimitCents: number
  readonly monthlyLimitCents: number
  readonly maxOrdersPerDay: number
  readonly maxOpenOrders: number
}

interface HistorySpec {
  readonly requisiteIndex: number
  readonly amountCents: number
  readonly status: OrderStatus
  readonly when: When
}

interface World {
  readonly traders: ReadonlyArray<TraderSpec>
  readonly requisites: ReadonlyArray<RequisiteSpec>
  readonly history: ReadonlyArray<HistorySpec>
}

interface OrderSpec {
  readonly direction: Direction
  readonly amountCents: number
  readonly amountCryptoMicros: number
  readonly paymentMethod: string
  readonly fiatCurrency: string
  readonly bankCode: string | null
}

// Skewed towards one method and currency so several requisites often compete for an order.
const methods = ["card", "card", "card", "card", "card", "sbp"] as const
const banks = ["sber", "tinkoff", "alfa"] as const
const currencies = ["RUB", "RUB", "RUB", "RUB", "RUB", "RUB", "RUB", "KZT"] as const
const statuses: ReadonlyArray<OrderStatus> = [
  "assigned",
  "pending_trader_confirmation",
  "completed",
  "cancelled",
  "failed",
  "dispute",
  "requires_attention"
]

// Mostly-usable worlds: rare "off" switches, so both found and not-found outcomes are common.
const mostly = (weightOutOfTwenty: number) =>
  fc.oneof(
    { weight: weightOutOfTwenty, arbitrary: fc.constant(true) },
    { weight: 20 - weightOutOfTwenty, arbitrary: fc.constant(false) }
  )

const traderArb: fc.Arbitrary<TraderSpec> = fc.record({
  isActive: mostly(19),
  inWork: mostly(19),
  priority: fc.integer({ min: 0, max: 3 }),
  // fast-check favours bounds (0, tiny, the max): mix in comfortable deposits so PayIns often fit.
  balanceMicros: fc.oneof(fc.integer({ min: 0, max: 100_000_000 }), fc.constant(100_000_000), fc.constant(500_000_000)),
  // Holds on part of the deposit: none, half, or nearly all of it.
  frozenPermille: fc.constantFrom(0, 0, 500, 950)
}).map(({ frozenPermille, ...trader }) => ({
  ...trader,
  frozenMicros: Math.floor((trader.balanceMicros * frozenPermille) / 1000)
}))

const requisiteArb = (traderCount: number): fc.Arbitrary<RequisiteSpec> =>
  fc.record({
    traderIndex: fc.integer({ min: 0, max: traderCount - 1 }),
    paymentMethod: fc.constantFrom(...methods),
    bankCode: fc.constantFrom(...banks),
    fiatCurrency: fc.constantFrom(...currencies),
    status: fc.oneof(
      { weight: 18, arbitrary: fc.constant<RequisiteStatus>("active") },
      { weight: 1, arbitrary: fc.constant<RequisiteStatus>("inactive") },
      { weight: 1, arbitrary: fc.constant<RequisiteStatus>("blocked") }
    ),
    lastAssignedMinutesAgo: fc.option(fc.integer({ min: 1, max: 2 }), { nil: null, freq: 2 }),
    payinEnabled: mostly(19),
    payoutEnabled: mostly(17),
    // Narrow and wide amount ranges, so that several requisites often accept the same amount.
    minCents: fc.oneof(fc.integer({ min: 100_00, max: 1_500_00 }), fc.constant(100_00)),
    spanCents: fc.oneof(fc.integer({ min: 0, max: 3_000_00 }), fc.constant(10_000_00)),
    dailyLimitCents: fc.oneof(fc.integer({ min: 1_000_00, max: 8_000_00 }), fc.constant(50_000_00)),
    monthlyLimitCents: fc.oneof(fc.integer({ min: 1_000_00, max: 15_000_00 }), fc.constant(100_000_00)),
    maxOrdersPerDay: fc.integer({ min: 1, max: 4 }),
    maxOpenOrders: fc.integer({ min: 1, max: 3 })
  }).map(({ spanCents, ...requisite }) => ({ ...requisite, maxCents: requisite.minCents + spanCents }))

const historyArb = (requisiteCount: number): fc.Arbitrary<HistorySpec> =>
  fc.record({
    requisiteIndex: fc.integer({ min: 0, max: requisiteCount - 1 }),
    amountCents: fc.integer({ min: 100_00, max: 3_000_00 }),
    status: fc.constantFrom(...statuses),
    when: fc.constantFrom<When>("today", "today", "month", "old")
  })

const worldArb: fc.Arbitrary<World> = fc.integer({ min: 1, max: 4 }).chain((traderCount) =>
  fc.integer({ min: 1, max: 6 }).chain((requisiteCount) =>
    fc.record({
      traders: fc.array(traderArb, { minLength: traderCount, maxLength: traderCount }),
      requisites: fc.array(requisiteArb(traderCount), { minLength: requisiteCount, maxLength: requisiteCount }),
      history: fc.array(historyArb(requisiteCount), { maxLength: 12 })
    })
  )
)

const randomOrderArb: fc.Arbitrary<OrderSpec> = fc.record({
  direction: fc.constantFrom<Direction>("payin", "payin", "payout"),
  amountCents: fc.integer({ min: 100_00, max: 4_000_00 }),
  amountCryptoMicros: fc.integer({ min: 1, max: 45_000_000 }),
  paymentMethod: fc.constantFrom(...methods),
  fiatCurrency: fc.constantFrom(...currencies),
  bankCode: fc.option(fc.constantFrom(...banks), { nil: null })
})

/** An order aimed at one requisite of the world (its method, currency, bank, amount range), so matches are common. */
const targetedOrderArb = (world: World): fc.Arbitrary<OrderSpec> =>
  fc.integer({ min: 0, max: world.requisites.length - 1 }).chain((index) => {
    const target = world.requisites[index]!
    return fc.record({
      direction: fc.constantFrom<Direction>("payin", "payin", "payout"),
      // Mostly inside the target's range (bounds included), sometimes a cent outside it.
      amountCents: fc.oneof(
        { weight: 9, arbitrary: fc.integer({ min: target.minCents, max: target.maxCents }) },
        { weight: 1, arbitrary: fc.constantFrom(target.minCents - 1, target.maxCents + 1) }
      ),
      amountCryptoMicros: fc.integer({ min: 1, max: 40_000_000 }),
      paymentMethod: fc.constant(target.paymentMethod),
      fiatCurrency: fc.constant(target.fiatCurrency),
      bankCode: fc.option(fc.constant(target.bankCode), { nil: null, freq: 2 })
    })
  })

const orderFor = (world: World) =>
  fc.oneof({ weight: 4, arbitrary: targetedOrderArb(world) }, { weight: 1, arbitrary: randomOrderArb })

/** A world and a few orders, each selected against that same world (building it is the slow part). */
const worldAndOrdersArb: fc.Arbitrary<readonly [World, ReadonlyArray<OrderSpec>]> = worldArb.chain((world) =>
  fc.tuple(fc.constant(world), fc.array(orderFor(world), { minLength: 1, maxLength: 5 }))
)

// ---------------------------------------------------------------------------------------------
// The model

type Outcome =
  | { readonly _tag: "Found"; readonly requisiteIndex: number }
  | { readonly _tag: "RequisiteNotFound" }
  | { readonly _tag: "LimitExceeded" }

const openStatuses: ReadonlyArray<OrderStatus> = ["assigned", "pending_trader_confirmation"]
const uncountedStatuses: ReadonlyArray<OrderStatus> = ["cancelled", "failed"]

const passesStaticFilters = (world: World, order: OrderSpec) => (requisite: RequisiteSpec): boolean => {
  const trader = world.traders[requisite.traderIndex]!
  return requisite.status === "active" &&
    trader.isActive && trader.inWork &&
    (order.direction === "payin" ? requisite.payinEnabled : requisite.payoutEnabled) &&
    requisite.paymentMethod === order.paymentMethod &&
    requisite.fiatCurrency === order.fiatCurrency &&
    (order.bankCode === null || requisite.bankCode === order.bankCode) &&
    requisite.minCents <= order.amountCents && order.amountCents <= requisite.maxCents &&
    (order.direction === "payout" || trader.balanceMicros - trader.frozenMicros >= order.amountCryptoMicros)
}

const passesLimits = (world: World, order: OrderSpec, firstDayOfMonth: boolean) => (index: number): boolean => {
  const requisite = world.requisites[index]!
  const rows = world.history.filter((row) => row.requisiteIndex === index)
  const counted = rows.filter((row) => !uncountedStatuses.includes(row.status))
  // On the 1st, the start of the month is also the start of the day.
  const today = counted.filter((row) => row.when === "today" || (row.when === "month" && firstDayOfMonth))
  const thisMonth = counted.filter((row) => row.when !== "old")
  const sum = (selected: ReadonlyArray<HistorySpec>) => selected.reduce((total, row) => total + row.amountCents, 0)
  const open = rows.filter((row) => openStatuses.includes(row.status)).length
  return sum(today) + order.amountCents <= requisite.dailyLimitCents &&
    sum(thisMonth) + order.amountCents <= requisite.monthlyLimitCents &&
    today.length + 1 <= requisite.maxOrdersPerDay &&
    open + 1 <= requisite.maxOpenOrders
}

/** Least recently assigned first (never assigned before all), then trader priority, then id. */
const fairness = (world: World) => (a: number, b: number): number => {
  const left = world.requisites[a]!
  const right = world.requisites[b]!
  const neverA = left.lastAssignedMinutesAgo === null
  const neverB = right.lastAssignedMinutesAgo === null
  if (neverA !== neverB) return neverA ? -1 : 1
  if (!neverA && left.lastAssignedMinutesAgo !== right.lastAssignedMinutesAgo) {
    return right.lastAssignedMinutesAgo! - left.lastAssignedMinutesAgo!
  }
  const priorityA = world.traders[left.traderIndex]!.priority
  const priorityB = world.traders[right.traderIndex]!.priority
  if (priorityA !== priorityB) return priorityB - priorityA
  return a - b
}

const predict = (world: World, order: OrderSpec, firstDayOfMonth: boolean): Outcome => {
  const eligible = world.requisites
    .map((requisite, index) => ({ requisite, index }))
    .filter(({ requisite }) => passesStaticFilters(world, order)(requisite))
    .map(({ index }) => index)
  if (eligible.length === 0) return { _tag: "RequisiteNotFound" }
  const chosen = [...eligible].sort(fairness(world)).slice(0, MAX_CANDIDATES).find(passesLimits(world, order, firstDayOfMonth))
  return chosen === undefined ? { _tag: "LimitExceeded" } : { _tag: "Found", requisiteIndex: chosen }
}

// ---------------------------------------------------------------------------------------------
// The real thing

const cents = (value: number) => formatFiat(BigDecimal.make(BigInt(value), 2))
const micros = (value: number) => formatCrypto(BigDecimal.make(BigInt(value), 6))

/** Writes the world into the emptied tables; returns the requisite ids in spec order. */
const buildWorld = (world: World, startedAt: Date) =>
  Effect.gen(function*() {
    yield* resetBusinessTables
    const clock = yield* databaseClock
    const createdAt: Record<When, Date> = {
      today: clock.dayStart,
      month: clock.monthStart,
      old: new Date(clock.monthStart.getTime() - 1000)
    }
    const { storeId } = yield* createStore()
    const traderIds: Array<number> = []
    for (const trader of world.traders) {
      const { traderId } = yield* createTrader({
        isActive: trader.isActive,
        inWork: trader.inWork,
        priority: trader.priority,
        balance: micros(trader.balanceMicros),
        frozen: micros(trader.frozenMicros)
      })
      traderIds.push(traderId)
    }
    const requisiteIds: Array<number> = []
    for (const requisite of world.requisites) {
      requisiteIds.push(
        yield* createRequisite(traderIds[requisite.traderIndex]!, {
          paymentMethod: requisite.paymentMethod,
          bankCode: requisite.bankCode,
          fiatCurrency: requisite.fiatCurrency,
          status: requisite.status,
          lastAssignedAt: requisite.lastAssignedMinutesAgo === null
            ? null
            : new Date(startedAt.getTime() - requisite.lastAssignedMinutesAgo * 60_000),
          settings: {
            payinEnabled: requisite.payinEnabled,
            payoutEnabled: requisite.payoutEnabled,
            minAmount: cents(requisite.minCents),
            maxAmount: cents(requisite.maxCents),
            dailyTurnoverLimit: cents(requisite.dailyLimitCents),
            monthlyTurnoverLimit: cents(requisite.monthlyLimitCents),
            maxOrdersPerDay: requisite.maxOrdersPerDay,
            maxOpenOrders: requisite.maxOpenOrders
          }
        })
      )
    }
    for (const row of world.history) {
      const requisite = world.requisites[row.requisiteIndex]!
      yield* insertOrderHistory({
        storeId,
        traderId: traderIds[requisite.traderIndex]!,
        requisiteId: requisiteIds[row.requisiteIndex]!,
        amountFiat: cents(row.amountCents),
        status: row.status,
        createdAt: createdAt[row.when]
      })
    }
    return { requisiteIds, firstDayOfMonth: clock.dayStart.getTime() === clock.monthStart.getTime() }
  })

/** Carries the selection's outcome out of a transaction that is always rolled back. */
class RolledBack {
  constructor(readonly exit: Exit.Exit<{ readonly requisiteId: number }, unknown>) {}
}

/** One selection in a transaction that is then rolled back, so the next order sees the same world. */
const runSelector = (order: OrderSpec) =>
  atomic(
    "model.select",
    Effect.flatMap(RequisiteSelector, (selector) =>
      selector.findSuitableRequisite({
        incomingOrderId: 1,
        direction: order.direction,
        amountFiat: BigDecimal.make(BigInt(order.amountCents), 2),
        currency: order.fiatCurrency,
        paymentMethod: order.paymentMethod,
        bankCode: Option.fromNullable(order.bankCode),
        amountCrypto: BigDecimal.make(BigInt(order.amountCryptoMicros), 6)
      })).pipe(Effect.exit, Effect.flatMap((exit) => Effect.fail(new RolledBack(exit))))
  ).pipe(
    Effect.flip,
    Effect.flatMap((outcome) => outcome instanceof RolledBack ? Effect.succeed(outcome.exit) : Effect.die(outcome))
  )

const describeExit = (exit: Exit.Exit<{ readonly requisiteId: number }, unknown>) =>
  Exit.isSuccess(exit)
    ? { _tag: "Found", requisiteId: exit.value.requisiteId }
    : {
      _tag: Option.match(Cause.failureOption(exit.cause), {
        onNone: () => `defect: ${Cause.pretty(exit.cause)}`,
        onSome: (error) => (error as { readonly _tag: string })._tag
      })
    }

/** Builds the world, then checks every order against the model; returns the predicted outcomes. */
const checkAgreement = (world: World, orders: ReadonlyArray<OrderSpec>) =>
  Effect.gen(function*() {
    const { requisiteIds, firstDayOfMonth } = yield* buildWorld(world, new Date())
    const outcomes: Array<Outcome["_tag"]> = []
    for (const order of orders) {
      const expected = predict(world, order, firstDayOfMonth)
      const actual = describeExit(yield* runSelector(order))
      const predicted = expected._tag === "Found"
        ? { _tag: "Found", requisiteId: requisiteIds[expected.requisiteIndex] }
        : { _tag: expected._tag }
      expect(actual, `order ${JSON.stringify(order)}`).toEqual(predicted)
      outcomes.push(expected._tag)
    }
    return outcomes
  })

// Runs are sequential; two connections are plenty and spare the shared server.
layer(Layer.provideMerge(RequisiteSelector.Default, TestDatabaseLive({ maxConnections: 2 })), {
  excludeTestServices: true
})(
  "RequisiteSelector model",
  (it) => {
    it.effect("agrees with the in-memory model on random worlds and orders", () =>
      Effect.gen(function*() {
        yield* ensureFiatCurrency("KZT", "Kazakhstani tenge")
        const runtime = yield* Effect.runtime<RequisiteSelector | SqlClient.SqlClient>().pipe(
          Logger.withMinimumLogLevel(LogLevel.Error)
        )
        const outcomes: Record<string, number> = {}
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(worldAndOrdersArb, async ([world, orders]) => {
              for (const outcome of await Runtime.runPromise(runtime)(checkAgreement(world, orders))) {
                outcomes[outcome] = (outcomes[outcome] ?? 0) + 1
              }
            }),
            { numRuns: 40 }
          )
        )
        yield* Effect.logInfo("model outcomes", outcomes)
      }), 120_000)
  }
)
