import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { BigDecimal, Deferred, Effect, Exit, Fiber, Layer, Logger, LogLevel, Option } from "effect"
import { LimitExceeded, RequisiteNotFound } from "../../src/domain/Errors.js"
import { atomic } from "../../src/services/Atomic.js"
import {
  type Candidate,
  MAX_CANDIDATES,
  RequisiteSelector,
  type SelectorOrder
} from "../../src/services/RequisiteSelector.js"
import {
  createIncomingOrder,
  createRequisite,
  createStore,
  createTrader,
  databaseClock,
  ensureFiatCurrency,
  insertOrderHistory,
  type OrderHistoryOptions,
  type RequisiteOptions,
  type RequisiteSettings,
  resetBusinessTables,
  type TraderOptions
} from "../support/fixtures.js"
import { TestDatabaseLive } from "../support/TestDatabase.js"

const decimal = BigDecimal.unsafeFromString

const payinOrder = (overrides: Partial<SelectorOrder> = {}): SelectorOrder => ({
  incomingOrderId: 1,
  direction: "payin",
  amountFiat: decimal("1500.00"),
  currency: "RUB",
  paymentMethod: "card",
  bankCode: Option.none(),
  amountCrypto: decimal("16.216216"),
  ...overrides
})

const payoutOrder = (overrides: Partial<SelectorOrder> = {}) => payinOrder({ direction: "payout", ...overrides })

/** One selection in its own transaction, as the OrderProcessor would run it. */
const select = <E = never, R = never>(
  order: SelectorOrder,
  accept?: (candidate: Candidate) => Effect.Effect<boolean, E, R>
) => atomic("test.select", Effect.flatMap(RequisiteSelector, (selector) => selector.findSuitableRequisite(order, accept)))

const selectedId = (order: SelectorOrder) => Effect.map(select(order), (candidate) => candidate.requisiteId)

/** A trader with one requisite: both as the fixtures' defaults unless told otherwise. */
const traderWithRequisite = (trader: TraderOptions = {}, requisite: RequisiteOptions = {}) =>
  Effect.gen(function*() {
    const { traderId } = yield* createTrader(trader)
    const requisiteId = yield* createRequisite(traderId, requisite)
    return { traderId, requisiteId }
  })

const lastAssignedAt = (requisiteId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ lastAssignedAt: Date | null }>`SELECT last_assigned_at FROM requisites WHERE id = ${requisiteId}`.pipe(
      Effect.map((rows) => rows[0]!.lastAssignedAt)
    ))

const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000)

const quiet = Logger.withMinimumLogLevel(LogLevel.Error)

// Each test resets the tables first: the selector looks at every requisite in the database.
// Four connections: the SKIP LOCKED test holds two transactions open while a third selects.
layer(Layer.provideMerge(RequisiteSelector.Default, TestDatabaseLive({ maxConnections: 4 })), {
  excludeTestServices: true
})(
  "RequisiteSelector",
  (it) => {
    it.effect("picks the matching requisite, returns its trader's rewards and marks it assigned", () =>
      Effect.gen(function*() {
        yield* resetBusinessTables
        const { requisiteId, traderId } = yield* traderWithRequisite({ payinRewardPct: "2.5000", payoutRewardPct: "1.2500" })
        const candidate = yield* select(payinOrder())
        expect(candidate.requisiteId).toBe(requisiteId)
        expect(candidate.traderId).toBe(traderId)
        expect(BigDecimal.equals(candidate.payinRewardPct, decimal("2.5"))).toBe(true)
        expect(BigDecimal.equals(candidate.payoutRewardPct, decimal("1.25"))).toBe(true)
        expect(yield* lastAssignedAt(requisiteId)).toBeInstanceOf(Date)
      }))

    it.effect("matches any bank when the order names none, and only that bank when it does", () =>
      Effect.gen(function*() {
        yield* resetBusinessTables
        const { requisiteId: tinkoff } = yield* traderWithRequisite({}, { bankCode: "tinkoff" })
        expect(yield* selectedId(payinOrder())).toBe(tinkoff)
        const { requisiteId: alfa } = yield* traderWithRequisite({}, { bankCode: "alfa" })
        expect(yield* selectedId(payinOrder({ bankCode: Option.some("alfa") }))).toBe(alfa)
        expect(yield* selectedId(payinOrder({ bankCode: Option.some("tinkoff") }))).toBe(tinkoff)
      }))

    it.effect("accepts amounts on the min/max bounds and a free balance exactly equal to the crypto amount", () =>
      Effect.gen(function*() {
        yield* resetBusinessTables
        const { requisiteId } = yield* traderWithRequisite(
          { balance: "116.216216", frozen: "100.000000" },
          { settings: { minAmount: "1500.00", maxAmount: "1500.00" } }
        )
        expect(yield* selectedId(payinOrder())).toBe(requisiteId)
      }))

    it.effect("ignores the trader's balance for PayOut", () =>
      Effect.gen(function*() {
        yield* resetBusinessTables
        const { requisiteId } = yield* traderWithRequisite({ balance: "0" })
        expect(yield* selectedId(payoutOrder())).toBe(requisiteId)
        const error = yield* Effect.flip(select(payinOrder()))
        expect(error).toBeInstanceOf(RequisiteNotFound)
      }))

    describe("static filters → RequisiteNotFound", () => {
      const cases: ReadonlyArray<{
        readonly name: string
        readonly trader?: TraderOptions
        readonly requisite?: RequisiteOptions
        readonly order?: SelectorOrder
        readonly reason: RegExp
      }> = [
        { name: "inactive requisite", requisite: { status: "inactive" }, reason: /none is active/ },
        { name: "blocked requisite", requisite: { status: "blocked" }, reason: /none is active/ },
        { name: "inactive trader", trader: { isActive: false }, reason: /active trader in work/ },
        { name: "trader not in work", trader: { inWork: false }, reason: /active trader in work/ },
        { name: "PayIn disabled", requisite: { settings: { payinEnabled: false } }, reason: /payin enabled/ },
        {
          name: "PayOut disabled",
          requisite: { settings: { payoutEnabled: false } },
          order: payoutOrder(),
          reason: /payout enabled/
        },
        { name: "payment method mismatch", requisite: { paymentMethod: "sbp" }, reason: /no requisite for payin/ },
        { name: "currency mismatch", requisite: { fiatCurrency: "KZT" }, reason: /no requisite for payin/ },
        {
          name: "bank mismatch",
          requisite: { bankCode: "tinkoff" },
          order: payinOrder({ bankCode: Option.some("sber") }),
          reason: /no requisite for .*bank sber/
        },
        { name: "amount below min_amount", requisite: { settings: { minAmount: "1500.01" } }, reason: /accepts amount/ },
        { name: "amount above max_amount", requisite: { settings: { maxAmount: "1499.99" } }, reason: /accepts amount/ },
        { name: "PayIn trader balance too low", trader: { balance: "16.216215" }, reason: /balance covers/ },
        {
          name: "PayIn trader balance minus holds too low",
          trader: { balance: "1000.000000", frozen: "983.783785" },
          reason: /balance covers/
        }
      ]
      for (const testCase of cases) {
        it.effect(testCase.name, () =>
          Effect.gen(function*() {
            yield* resetBusinessTables
            yield* ensureFiatCurrency("KZT", "Kazakhstani tenge")
            const { requisiteId } = yield* traderWithRequisite(testCase.trader, testCase.requisite)
            const error = yield* Effect.flip(select(testCase.order ?? payinOrder()))
            expect(error).toBeInstanceOf(RequisiteNotFound)
            expect(error.message).toMatch(testCase.reason)
            // Nothing was touched: the transaction only read.
            expect(yield* lastAssignedAt(requisiteId)).toBeNull()
          }))
      }
    })

    describe("dynamic limits → LimitExceeded", () => {
      /** One store, one trader, one requisite with the given limits, plus its existing orders. */
      const limitedWorld = (
        settings: Partial<RequisiteSettings>,
        orders: ReadonlyArray<Pick<OrderHistoryOptions, "amountFiat" | "status" | "createdAt">>
      ) =>
        Effect.gen(function*() {
          yield* resetBusinessTables
          const { storeId } = yield* createStore()
          const { traderId, requisiteId } = yield* traderWithRequisite({}, { settings })
          for (const order of orders) yield* insertOrderHistory({ storeId, traderId, requisiteId, ...order })
          return { storeId, traderId, requisiteId }
        })

      it.effect("daily turnover: counts today's orders except cancelled/failed; the limit itself is allowed", () =>
        Effect.gen(function*() {
          const { requisiteId } = yield* limitedWorld({ dailyTurnoverLimit: "3000.00" }, [
            { amountFiat: "1000.00", status: "completed" },
            { amountFiat: "500.00", status: "assigned" },
            { amountFiat: "900.00", status: "cancelled" },
            { amountFiat: "900.00", status: "failed" }
          ])
          const error = yield* Effect.flip(select(payinOrder({ amountFiat: decimal("1500.01") })))
          expect(error).toBeInstanceOf(LimitExceeded)
          expect(error.message).toMatch(/checked 1 .*daily turnover 1500(\.00)? \+ 1500\.01 exceeds 3000\.00/)
          expect((error as LimitExceeded).checked).toBe(1)
          expect(yield* selectedId(payinOrder({ amountFiat: decimal("1500.00") }))).toBe(requisiteId)
        }))

      it.effect("daily turnover ignores last month's orders", () =>
        Effect.gen(function*() {
          const { monthStart } = yield* databaseClock
          const lastMonth = new Date(monthStart.getTime() - 24 * 3600_000)
          const { requisiteId } = yield* limitedWorld(
            { dailyTurnoverLimit: "2000.00", monthlyTurnoverLimit: "2000.00" },
            [{ amountFiat: "1900.00", status: "completed", createdAt: lastMonth }]
          )
          expect(yield* selectedId(payinOrder())).toBe(requisiteId)
        }))

      it.effect("monthly turnover: counts this month's orders except cancelled/failed", () =>
        Effect.gen(function*() {
          const { monthStart } = yield* databaseClock
          const { requisiteId } = yield* limitedWorld({ monthlyTurnoverLimit: "5000.00" }, [
            { amountFiat: "2000.00", status: "completed", createdAt: monthStart },
            { amountFiat: "2000.00", status: "dispute" },
            { amountFiat: "3000.00", status: "cancelled", createdAt: monthStart },
            { amountFiat: "3000.00", status: "failed" }
          ])
          const error = yield* Effect.flip(select(payinOrder({ amountFiat: decimal("1000.01") })))
          expect(error).toBeInstanceOf(LimitExceeded)
          expect(error.message).toMatch(/monthly turnover 4000(\.00)? \+ 1000\.01 exceeds 5000\.00/)
          expect(yield* selectedId(payinOrder({ amountFiat: decimal("1000.00") }))).toBe(requisiteId)
        }))

      it.effect("orders per day", () =>
        Effect.gen(function*() {
          yield* limitedWorld({ maxOrdersPerDay: 2 }, [
            { status: "completed" },
            { status: "requires_attention" },
            { status: "cancelled" }
          ])
          const error = yield* Effect.flip(select(payinOrder()))
          expect(error).toBeInstanceOf(LimitExceeded)
          expect(error.message).toMatch(/orders today 2 reached max_orders_per_day 2/)
        }))

      it.effect("orders per day: cancelled and failed orders do not count", () =>
        Effect.gen(function*() {
          const { requisiteId } = yield* limitedWorld({ maxOrdersPerDay: 2 }, [
            { status: "completed" },
            { status: "cancelled" },
            { status: "failed" }
          ])
          expect(yield* selectedId(payinOrder())).toBe(requisiteId)
        }))

      it.effect("open orders: assigned and pending confirmation count, whatever their age", () =>
        Effect.gen(function*() {
          const { monthStart } = yield* databaseClock
          yield* limitedWorld({ maxOpenOrders: 2 }, [
            { status: "assigned", createdAt: new Date(monthStart.getTime() - 40 * 24 * 3600_000) },
            { status: "pending_trader_confirmation" },
            { status: "completed" }
          ])
          const error = yield* Effect.flip(select(payinOrder()))
          expect(error).toBeInstanceOf(LimitExceeded)
          expect(error.message).toMatch(/open orders 2 reached max_open_orders 2/)
        }))

      it.effect("open orders: completed, cancelled and disputed orders are not open", () =>
        Effect.gen(function*() {
          const { requisiteId } = yield* limitedWorld({ maxOpenOrders: 1 }, [
            { status: "completed" },
            { status: "cancelled" },
            { status: "dispute" }
          ])
          expect(yield* selectedId(payinOrder())).toBe(requisiteId)
        }))

      it.effect("takes the next candidate when the first fails its limits", () =>
        Effect.gen(function*() {
          yield* resetBusinessTables
          const store = yield* createStore()
          // The full one comes first by fairness (never assigned); the free one was assigned an hour ago.
          const full = yield* traderWithRequisite({}, { settings: { maxOpenOrders: 1 } })
          const free = yield* traderWithRequisite({}, { lastAssignedAt: minutesAgo(60) })
          yield* insertOrderHistory({ storeId: store.storeId, ...full })
          const candidate = yield* select(payinOrder())
          expect(candidate.requisiteId).toBe(free.requisiteId)
          // The rejected candidate is not marked as assigned.
          expect(yield* lastAssignedAt(full.requisiteId)).toBeNull()
        }))

      it.effect("walks past rejected candidates until one passes, and gives up after MAX_CANDIDATES", () =>
        Effect.gen(function*() {
          yield* resetBusinessTables
          const { storeId } = yield* createStore()
          const fullCount = MAX_CANDIDATES + 2
          // One trader, many requisites each with one open order and max_open_orders = 1.
          const { traderId } = yield* createTrader()
          for (let index = 0; index < fullCount; index++) {
            const requisiteId = yield* createRequisite(traderId, { settings: { maxOpenOrders: 1 } })
            yield* insertOrderHistory({ storeId, traderId, requisiteId })
          }
          const error = yield* Effect.flip(select(payinOrder()))
          expect(error).toBeInstanceOf(LimitExceeded)
          expect((error as LimitExceeded).checked).toBe(MAX_CANDIDATES)
          expect(error.message).toMatch(
            /checked 50 requisite\(s\) \(2 more not examined: at most 50 per order\), none passed; last reason: open orders 1/
          )

          // A free requisite behind a dozen full ones (ordered by id, all never assigned).
          yield* resetBusinessTables
          const store = yield* createStore()
          const trader = yield* createTrader()
          const fullBefore = 12
          for (let index = 0; index < fullBefore; index++) {
            const requisiteId = yield* createRequisite(trader.traderId, { settings: { maxOpenOrders: 1 } })
            yield* insertOrderHistory({ storeId: store.storeId, traderId: trader.traderId, requisiteId })
          }
          const freeId = yield* createRequisite(trader.traderId)
          expect(yield* selectedId(payinOrder())).toBe(freeId)
        }))
    })

    describe("fairness", () => {
      it.effect("least recently assigned first (never assigned before all), rotating as assignments happen", () =>
        Effect.gen(function*() {
          yield* resetBusinessTables
          const hourAgo = yield* traderWithRequisite({}, { lastAssignedAt: minutesAgo(60) })
          const never = yield* traderWithRequisite({}, { lastAssignedAt: null })
          const twoHoursAgo = yield* traderWithRequisite({}, { lastAssignedAt: minutesAgo(120) })
          const picks: Array<number> = []
          for (let index = 0; index < 4; index++) picks.push(yield* selectedId(payinOrder()))
          expect(picks).toEqual([never.requisiteId, twoHoursAgo.requisiteId, hourAgo.requisiteId, never.requisiteId])
        }))

      it.effect("then higher trader priority, then lower requisite id", () =>
        Effect.gen(function*() {
          yield* resetBusinessTables
          const at = minutesAgo(30)
          const low = yield* traderWithRequisite({ priority: 1 }, { lastAssignedAt: at })
          const high = yield* traderWithRequisite({ priority: 5 }, { lastAssignedAt: at })
          const highSecond = yield* createRequisite(high.traderId, { lastAssignedAt: at })
          const older = yield* traderWithRequisite({ priority: 0 }, { lastAssignedAt: minutesAgo(31) })
          const picks: Array<number> = []
          for (let index = 0; index < 4; index++) picks.push(yield* selectedId(payinOrder()))
          expect(picks).toEqual([older.requisiteId, high.requisiteId, highSecond, low.requisiteId])
        }))
    })

    describe("SKIP LOCKED", () => {
      /** Selects in a forked transaction and keeps it open (holding the lock) until `release` completes. */
      const holdSelection = (order: SelectorOrder) =>
        Effect.gen(function*() {
          const selected = yield* Deferred.make<Candidate, unknown>()
          const release = yield* Deferred.make<void>()
          const fiber = yield* atomic(
            "test.hold",
            Effect.flatMap(RequisiteSelector, (selector) => selector.findSuitableRequisite(order)).pipe(
              Effect.tap((candidate) => Deferred.succeed(selected, candidate)),
              Effect.tapError((error) => Deferred.fail(selected, error)),
              Effect.zipLeft(Deferred.await(release))
            )
          ).pipe(Effect.fork)
          // Generous: the shared CI database can be slow; a hang still fails instead of blocking the suite.
          const candidate = yield* Deferred.await(selected).pipe(Effect.timeout("30 seconds"))
          return { candidate, release: Effect.zipRight(Deferred.succeed(release, undefined), Fiber.join(fiber)) }
        })

      it.effect("a concurrent selection gets a different requisite, or LimitExceeded when none is left", () =>
        Effect.gen(function*() {
          yield* resetBusinessTables
          const first = yield* traderWithRequisite()
          const second = yield* traderWithRequisite({}, { lastAssignedAt: minutesAgo(5) })

          const holder = yield* holdSelection(payinOrder())
          expect(holder.candidate.requisiteId).toBe(first.requisiteId)
          yield* Effect.gen(function*() {
            const other = yield* holdSelection(payinOrder())
            expect(other.candidate.requisiteId).toBe(second.requisiteId)
            yield* Effect.gen(function*() {
              // Both are held: the third finds them busy, not missing.
              const error = yield* Effect.flip(select(payinOrder()))
              expect(error).toBeInstanceOf(LimitExceeded)
              expect((error as LimitExceeded).checked).toBe(0)
              expect(error.message).toMatch(/all 2 matching requisite\(s\) are held by concurrent assignments/)
            }).pipe(Effect.ensuring(Effect.orDie(other.release)))
          }).pipe(Effect.ensuring(Effect.orDie(holder.release)))

          // Released (committed): both are selectable again. last_assigned_at is now(), the start of each
          // transaction, and the first holder's transaction started first.
          expect(yield* selectedId(payinOrder())).toBe(first.requisiteId)
        }))
    })

    describe("accept", () => {
      it.effect("false moves to the next candidate, and the refused one is not marked", () =>
        Effect.gen(function*() {
          yield* resetBusinessTables
          const refused = yield* traderWithRequisite()
          const accepted = yield* traderWithRequisite({}, { lastAssignedAt: minutesAgo(5) })
          const offered: Array<number> = []
          const candidate = yield* select(payinOrder(), (candidate) =>
            Effect.sync(() => {
              offered.push(candidate.requisiteId)
              return candidate.requisiteId !== refused.requisiteId
            }))
          expect(offered).toEqual([refused.requisiteId, accepted.requisiteId])
          expect(candidate.requisiteId).toBe(accepted.requisiteId)
          expect(yield* lastAssignedAt(refused.requisiteId)).toBeNull()
        }))

      it.effect("false for every candidate → LimitExceeded naming the failed reserve", () =>
        Effect.gen(function*() {
          yield* resetBusinessTables
          yield* traderWithRequisite()
          yield* traderWithRequisite()
          const error = yield* Effect.flip(select(payinOrder(), () => Effect.succeed(false)))
          expect(error).toBeInstanceOf(LimitExceeded)
          expect(error.message).toMatch(/checked 2 .*reserve failed/)
        }))

      it.effect("its failure aborts the selection and the caller's transaction", () =>
        Effect.gen(function*() {
          yield* resetBusinessTables
          const { requisiteId } = yield* traderWithRequisite()
          const error = yield* Effect.flip(select(payinOrder(), () => Effect.fail("hold failed" as const)))
          expect(error).toBe("hold failed")
          expect(yield* lastAssignedAt(requisiteId)).toBeNull()
        }))
    })

    it.effect("refuses to run outside a transaction (its locks would be released at once)", () =>
      Effect.gen(function*() {
        yield* resetBusinessTables
        yield* traderWithRequisite()
        const exit = yield* Effect.flatMap(RequisiteSelector, (selector) => selector.findSuitableRequisite(payinOrder()))
          .pipe(Effect.exit)
        expect(Exit.isFailure(exit) && Exit.causeOption(exit).pipe(Option.exists((cause) => cause._tag === "Die")))
          .toBe(true)
      }))
  }
)

// Its own database: 100 transactions over a pool of 10 connections.
layer(Layer.provideMerge(RequisiteSelector.Default, TestDatabaseLive({ maxConnections: 10 })), {
  excludeTestServices: true
})("RequisiteSelector under concurrency", (it) => {
  it.effect("100 concurrent assignments never push a requisite past max_open_orders, and fill them exactly", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const requisiteCount = 5
      const maxOpenOrders = 3
      const orderCount = 100
      const capacity = Math.min(orderCount, maxOpenOrders * requisiteCount)
      const { storeId } = yield* createStore()
      for (let index = 0; index < requisiteCount; index++) {
        yield* traderWithRequisite({}, { settings: { maxOpenOrders } })
      }
      const incomingOrderIds: Array<number> = []
      for (let index = 0; index < orderCount; index++) incomingOrderIds.push(yield* createIncomingOrder({ storeId }))

      /** Select and insert the order in one transaction, as the OrderProcessor does. */
      const assign = (incomingOrderId: number) =>
        atomic(
          "test.assign",
          Effect.gen(function*() {
            const selector = yield* RequisiteSelector
            const candidate = yield* selector.findSuitableRequisite(payinOrder({ incomingOrderId }))
            yield* insertOrderHistory({
              storeId,
              traderId: candidate.traderId,
              requisiteId: candidate.requisiteId,
              incomingOrderId
            })
            return "assigned" as const
          })
        ).pipe(
          // Examined every requisite and all were full, or skipped some held by concurrent transactions.
          Effect.catchTag("LimitExceeded", (error) =>
            Effect.succeed(error.checked === requisiteCount ? "full" as const : "busy" as const))
        )

      // Like the worker, retry an order that found requisites busy, a bounded number of times.
      const attemptsMax = 20
      const assignWithRetry = (incomingOrderId: number) =>
        Effect.gen(function*() {
          for (let attempt = 1; attempt < attemptsMax; attempt++) {
            const outcome = yield* assign(incomingOrderId)
            if (outcome !== "busy") return outcome
            yield* Effect.sleep(`${1 + Math.floor(Math.random() * 10)} millis`)
          }
          return yield* assign(incomingOrderId)
        })

      const openPerRequisite = sql<{ requisiteId: number; open: number }>`
        SELECT r.id AS requisite_id, count(h.id)::int AS open
        FROM requisites r LEFT JOIN order_history h
          ON h.requisite_id = r.id AND h.status IN ('assigned', 'pending_trader_confirmation')
        GROUP BY r.id ORDER BY r.id`

      const outcomes = yield* Effect.all(incomingOrderIds.map(assignWithRetry), { concurrency: orderCount }).pipe(quiet)
      const assignedConcurrently = outcomes.filter((outcome) => outcome === "assigned").length
      // The invariant under concurrency: no requisite past its limit, whatever the interleaving.
      for (const row of yield* openPerRequisite) expect(row.open).toBeLessThanOrEqual(maxOpenOrders)
      expect(assignedConcurrently).toBeGreaterThan(0)
      expect(assignedConcurrently).toBeLessThanOrEqual(capacity)

      // Whatever a bounded retry left unassigned (busy), assigning one by one fills exactly the capacity.
      const leftover = incomingOrderIds.filter((_, index) => outcomes[index] !== "assigned")
      const drained = yield* Effect.forEach(leftover, assign).pipe(quiet)
      expect(drained.filter((outcome) => outcome === "busy")).toEqual([])
      expect(assignedConcurrently + drained.filter((outcome) => outcome === "assigned").length).toBe(capacity)
      expect((yield* openPerRequisite).map((row) => row.open)).toEqual(Array(requisiteCount).fill(maxOpenOrders))
      const duplicates = yield* sql<{ count: number }>`
        SELECT count(*)::int AS count FROM (SELECT incoming_order_id FROM order_history GROUP BY 1 HAVING count(*) > 1) d`
      expect(duplicates[0]!.count).toBe(0)
      yield* Effect.logInfo(`assigned concurrently: ${assignedConcurrently} of ${capacity}`)
    }), 120_000)
})
