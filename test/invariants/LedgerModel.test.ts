import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { BigDecimal, Effect, Either, Layer, Logger, LogLevel, Runtime } from "effect"
import fc from "fast-check"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { StoreId, UserId } from "../../src/domain/Ids.js"
import type { StorePrincipal, UserPrincipal } from "../../src/domain/Principal.js"
import type { Direction, OrderStatus } from "../../src/domain/Status.js"
import { AppConfig } from "../../src/layers/Config.js"
import { KeyValue } from "../../src/layers/KeyValue.js"
import { ObjectStore } from "../../src/layers/ObjectStore.js"
import { OrderWakeup } from "../../src/layers/OrderWakeup.js"
import { atomic } from "../../src/services/Atomic.js"
import { BalanceManager } from "../../src/services/BalanceManager.js"
import { ErrorReporter } from "../../src/services/ErrorReporter.js"
import { FraudDetector } from "../../src/services/FraudDetector.js"
import { OrderProcessor } from "../../src/services/OrderProcessor.js"
import { LifecycleActor, OrderStatusManager, type Receipt } from "../../src/services/OrderStatusManager.js"
import { Reconciliation } from "../../src/services/Reconciliation.js"
import { ReferenceData } from "../../src/services/ReferenceData.js"
import { expireDueOrders } from "../../src/workers/TimeoutWorker.js"
import {
  createIncomingOrder,
  createRequisite,
  createStore,
  createTrader,
  createUser,
  insertOrderHistory,
  resetBusinessTables
} from "../support/fixtures.js"
import { ledgerViolations, readLedgerSnapshot } from "../support/invariants/ledgerChecks.js"
import {
  allStatuses,
  decideMove,
  formatCents,
  formatMicro,
  isOpen,
  type AccountRefModel,
  LedgerModel,
  type ModelActor,
  type ModelOrder,
  orderAmounts,
  parseScaled
} from "../support/invariants/ledgerModel.js"
import { TestDatabaseLive } from "../support/TestDatabase.js"

/**
 * Model-based test of the order state machine and the ledger on real PostgreSQL (issue 4): random
 * sequences of assignments (directly through BalanceManager and through the real OrderProcessor),
 * customer and trader confirmations, cancellations, disputes, admin moves, timeouts, deposits and
 * withdrawals for PayIn and PayOut run against the services and against `LedgerModel`, a plain
 * bigint model written from the SPEC. After every command the database's balances, holds, order
 * statuses and ledger states must equal the model's exactly, and each command's outcome (success or
 * the typed refusal) must be the one the model predicts. Each run ends with a clean reconciliation.
 */

const RUNS = 50
const COMMANDS_MAX = 30
const STORE_COUNT = 2
const TRADER_COUNT = 3

const quiet = Logger.withMinimumLogLevel(LogLevel.None)
const objectDir = mkdtempSync(join(tmpdir(), "jivapay-ledger-model-"))

const TestLayer = Layer.mergeAll(
  OrderStatusManager.Default,
  BalanceManager.Default,
  Reconciliation.Default,
  ReferenceData.Default,
  OrderProcessor.Default
).pipe(
  Layer.provideMerge(Layer.mergeAll(FraudDetector.Default, ErrorReporter.Test)),
  Layer.provideMerge(Layer.mergeAll(
    OrderWakeup.layer,
    KeyValue.layerMemory,
    ObjectStore.layerLocal(objectDir),
    AppConfig.layerWith({ maxReceiptBytes: 4096 })
  )),
  Layer.provideMerge(TestDatabaseLive({ maxConnections: 4 }))
)

type Services = Layer.Layer.Success<typeof TestLayer>

// ---- the world of one run ----------------------------------------------------------------------

interface WorldParameters {
  readonly rate: string
  readonly storePcts: ReadonlyArray<{ readonly payin: string; readonly payout: string }>
  readonly traderPcts: ReadonlyArray<{ readonly payin: string; readonly payout: string }>
}

interface World {
  readonly parameters: WorldParameters
  readonly rateUnits: bigint
  readonly admin: UserPrincipal
  readonly support: UserPrincipal
  readonly stores: ReadonlyArray<{ readonly storeId: number; readonly principal: StorePrincipal }>
  readonly traders: ReadonlyArray<{
    readonly traderId: number
    readonly requisiteId: number
    readonly principal: { readonly user: UserPrincipal; readonly traderId: number }
  }>
}

interface Real {
  readonly world: World
  readonly run: <A, E>(effect: Effect.Effect<A, E, Services>) => Promise<A>
}

const userPrincipal = (userId: number, role: UserPrincipal["role"], traderId: number | null = null): UserPrincipal => ({
  userId: userId as UserId,
  role,
  sessionId: 0,
  merchantId: null,
  traderId
})

const buildWorld = (parameters: WorldParameters) =>
  Effect.gen(function*() {
    yield* resetBusinessTables
    const admin = userPrincipal(yield* createUser({ role: "admin" }), "admin")
    const support = userPrincipal(yield* createUser({ role: "support" }), "support")
    const stores = []
    for (const pct of parameters.storePcts) {
      const { merchantId, storeId } = yield* createStore({ payinCommissionPct: pct.payin, payoutCommissionPct: pct.payout })
      stores.push({ storeId, principal: { storeId: storeId as StoreId, merchantId, publicId: `pub-${storeId}` } })
    }
    const traders = []
    for (const pct of parameters.traderPcts) {
      const userId = yield* createUser({ role: "trader" })
      const { traderId } = yield* createTrader({ userId, balance: "0", payinRewardPct: pct.payin, payoutRewardPct: pct.payout })
      // Limits far above anything a run can reach: this test is about money, not about the selector.
      const requisiteId = yield* createRequisite(traderId, { settings: { maxOpenOrders: 1000, maxOrdersPerDay: 1000 } })
      traders.push({ traderId, requisiteId, principal: { user: userPrincipal(userId, "trader", traderId), traderId } })
    }
    const referenceData = yield* ReferenceData
    yield* Effect.orDie(referenceData.setRateByAdmin(admin, "RUB", "USDT", BigDecimal.unsafeFromString(parameters.rate)))
    return { parameters, rateUnits: parseScaled(parameters.rate, 8), admin, support, stores, traders } satisfies World
  })

const percentUnits = (pct: string) => parseScaled(pct, 4)

const amountsFor = (world: World, direction: Direction, storeIndex: number, traderIndex: number, fiatCents: bigint) => {
  const store = world.parameters.storePcts[storeIndex]!
  const trader = world.parameters.traderPcts[traderIndex]!
  return orderAmounts(
    fiatCents,
    world.rateUnits,
    percentUnits(direction === "payin" ? store.payin : store.payout),
    percentUnits(direction === "payin" ? trader.payin : trader.payout)
  )
}

const png = (): Receipt => {
  const bytes = new Uint8Array(64)
  bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
  return { bytes, declaredType: "image/png", fileName: "receipt.png" }
}

// ---- comparing the database with the model -------------------------------------------------------

const ledgerLabel = (state: { holds: number; posts: number; voids: number }) =>
  state.posts > 0 ? "posted" : state.voids > 0 ? "voided" : state.holds > 0 ? "held" : "none"

/** The database must say exactly what the model says, to the micro-unit. */
const compareWithModel = async (model: LedgerModel, real: Real, after: string) => {
  const snapshot = await real.run(readLedgerSnapshot)
  const where = `after ${after}`
  const account = (rows: ReadonlyMap<number, { balance: bigint; frozen: bigint }>, id: number) => {
    const row = rows.get(id)
    return row === undefined ? "missing" : `${formatMicro(row.balance)}/${formatMicro(row.frozen)}`
  }
  real.world.stores.forEach((store, index) => {
    const expected = model.stores[index]!
    expect(account(snapshot.stores, store.storeId), `store ${index} ${where}`).toBe(
      `${formatMicro(expected.balance)}/${formatMicro(expected.frozen)}`
    )
  })
  real.world.traders.forEach((trader, index) => {
    const expected = model.traders[index]!
    expect(account(snapshot.traders, trader.traderId), `trader ${index} ${where}`).toBe(
      `${formatMicro(expected.balance)}/${formatMicro(expected.frozen)}`
    )
  })
  expect(formatMicro(snapshot.platform), `platform ${where}`).toBe(formatMicro(model.platform))
  expect(formatMicro(snapshot.externalNet), `external net ${where}`).toBe(formatMicro(model.externalNet))
  const actualOrders = [...snapshot.orders.values()]
    .map((order) => `${order.orderId}:${order.status}:${ledgerLabel(order)}`)
    .sort()
  const expectedOrders = model.orders.map((order) => `${order.orderId}:${order.status}:${order.ledger}`).sort()
  expect(actualOrders, `orders ${where}`).toEqual(expectedOrders)
  expect(ledgerViolations(snapshot), `ledger invariants ${where}`).toEqual([])
  model.selfCheck()
}

// ---- commands ------------------------------------------------------------------------------------

type LedgerCommand = fc.AsyncCommand<LedgerModel, Real>

/** How often each kind of command succeeded or was refused, over all runs: the test's coverage. */
const outcomes: Record<string, number> = {}
const countOutcome = (command: string, outcome: string) => {
  const key = `${command.split("(", 1)[0]}:${outcome}`
  outcomes[key] = (outcomes[key] ?? 0) + 1
}

const pickOrder = (model: Readonly<LedgerModel>, pick: number): ModelOrder => model.orders[pick % model.orders.length]!
const hasOrders = (model: Readonly<LedgerModel>) => model.orders.length > 0

/** "ok", or the tag of the typed error that refused the operation. */
const outcomeTag = <A, E extends { readonly _tag: string }>(effect: Effect.Effect<A, E, Services>) =>
  Effect.map(Effect.either(effect), Either.match({ onLeft: (error) => error._tag, onRight: () => "ok" }))

const accountRef = (kind: "store" | "trader", index: number): AccountRefModel => ({
  kind,
  index: kind === "store" ? index % STORE_COUNT : index % TRADER_COUNT
})

class Deposit implements LedgerCommand {
  constructor(readonly kind: "store" | "trader", readonly index: number, readonly amountMicro: bigint) {}
  check = () => true
  async run(model: LedgerModel, real: Real) {
    const ref = accountRef(this.kind, this.index)
    const id = ref.kind === "store" ? real.world.stores[ref.index]!.storeId : real.world.traders[ref.index]!.traderId
    await real.run(Effect.flatMap(BalanceManager, (balances) =>
      Effect.orDie(balances.deposit({ kind: ref.kind, id }, BigDecimal.make(this.amountMicro, 6), real.world.admin, "model deposit"))))
    model.deposit(ref, this.amountMicro)
    await compareWithModel(model, real, this.toString())
  }
  toString = () => `Deposit(${this.kind} ${this.index}, ${formatMicro(this.amountMicro)})`
}

/** `exact` withdraws all that is available, `over` one micro-unit more; `amount` a random amount. */
class Withdraw implements LedgerCommand {
  constructor(
    readonly kind: "store" | "trader",
    readonly index: number,
    readonly mode: "exact" | "over" | "amount",
    readonly amountMicro: bigint
  ) {}
  check = () => true
  async run(model: LedgerModel, real: Real) {
    const ref = accountRef(this.kind, this.index)
    const available = model.available(ref)
    const amount = this.mode === "exact" ? available : this.mode === "over" ? available + 1n : this.amountMicro
    if (amount <= 0n) return
    const id = ref.kind === "store" ? real.world.stores[ref.index]!.storeId : real.world.traders[ref.index]!.traderId
    const outcome = await real.run(Effect.flatMap(BalanceManager, (balances) =>
      outcomeTag(balances.withdraw({ kind: ref.kind, id }, BigDecimal.make(amount, 6), real.world.admin, "model withdrawal"))))
    const allowed = model.withdraw(ref, amount)
    countOutcome(this.toString(), outcome)
    expect(outcome, `${this} of ${formatMicro(amount)} with ${formatMicro(available)} available`).toBe(
      allowed ? "ok" : "InsufficientBalance"
    )
    await compareWithModel(model, real, this.toString())
  }
  toString = () => `Withdraw(${this.kind} ${this.index}, ${this.mode}${this.mode === "amount" ? ` ${formatMicro(this.amountMicro)}` : ""})`
}

/** An assignment as the processor writes it (order row + hold in one transaction), with a chosen trader. */
class AssignDirect implements LedgerCommand {
  constructor(
    readonly direction: Direction,
    readonly storeIndex: number,
    readonly traderIndex: number,
    readonly fiatCents: bigint
  ) {}
  check = () => true
  async run(model: LedgerModel, real: Real) {
    const world = real.world
    const store = world.stores[this.storeIndex]!
    const trader = world.traders[this.traderIndex]!
    const amounts = amountsFor(world, this.direction, this.storeIndex, this.traderIndex, this.fiatCents)
    const storePct = world.parameters.storePcts[this.storeIndex]!
    const traderPct = world.parameters.traderPcts[this.traderIndex]!
    const direction = this.direction
    const amountFiat = formatCents(this.fiatCents)
    const result = await real.run(Effect.either(atomic(
      "model.assign",
      Effect.gen(function*() {
        const balances = yield* BalanceManager
        const incomingOrderId = yield* createIncomingOrder({
          storeId: store.storeId,
          direction,
          amount: amountFiat,
          status: "assigned"
        })
        const { orderId } = yield* insertOrderHistory({
          storeId: store.storeId,
          traderId: trader.traderId,
          requisiteId: trader.requisiteId,
          incomingOrderId,
          direction,
          amountFiat,
          exchangeRate: world.parameters.rate,
          amountCrypto: formatMicro(amounts.amountCrypto),
          storeCommissionPct: direction === "payin" ? storePct.payin : storePct.payout,
          storeCommissionCrypto: formatMicro(amounts.storeCommission),
          traderRewardPct: direction === "payin" ? traderPct.payin : traderPct.payout,
          traderRewardCrypto: formatMicro(amounts.traderReward)
        })
        yield* balances.hold(orderId)
        return { orderId, incomingOrderId }
      })
    )))
    const covered = model.canHold(this.direction, this.storeIndex, this.traderIndex, amounts)
    countOutcome(this.toString(), Either.isRight(result) ? "ok" : result.left._tag)
    if (Either.isRight(result)) {
      expect(covered, `${this}: assigned although the model has no cover`).toBe(true)
      model.addHeldOrder({
        ...result.right,
        direction,
        storeIndex: this.storeIndex,
        traderIndex: this.traderIndex,
        amounts
      })
    } else {
      expect({ covered, error: result.left._tag }, `${this}`).toEqual({ covered: false, error: "InsufficientBalance" })
    }
    await compareWithModel(model, real, this.toString())
  }
  toString = () => `AssignDirect(${this.direction}, store ${this.storeIndex}, trader ${this.traderIndex}, ${formatCents(this.fiatCents)} RUB)`
}
/** The real OrderProcessor on a new incoming order: the selector picks the trader, the model checks the pick. */
class AssignByProcessor implements LedgerCommand {
  constructor(readonly direction: Direction, readonly storeIndex: number, readonly fiatCents: bigint) {}
  check = () => true
  async run(model: LedgerModel, real: Real) {
    const world = real.world
    const store = world.stores[this.storeIndex]!
    const direction = this.direction
    const fiatCents = this.fiatCents
    const outcome = await real.run(Effect.gen(function*() {
      const incomingOrderId = yield* createIncomingOrder({ storeId: store.storeId, direction, amount: formatCents(fiatCents) })
      const processor = yield* OrderProcessor
      return yield* processor.processIncomingOrder(incomingOrderId)
    }))
    // A and s do not depend on the trader; the PayIn selector wants A available (not just the hold A − t).
    const priced = amountsFor(world, direction, this.storeIndex, 0, fiatCents)
    const eligible = direction === "payin"
      ? world.traders.map((_, index) => index).filter((index) =>
        model.available({ kind: "trader", index }) >= priced.amountCrypto)
      : model.available({ kind: "store", index: this.storeIndex }) >= priced.amountCrypto + priced.storeCommission
      ? world.traders.map((_, index) => index)
      : []
    countOutcome(this.toString(), outcome._tag)
    if (outcome._tag === "Assigned") {
      const traderIndex = world.traders.findIndex((trader) => trader.traderId === outcome.traderId)
      expect(eligible, `${this}: trader ${traderIndex} was not eligible`).toContain(traderIndex)
      const amounts = amountsFor(world, direction, this.storeIndex, traderIndex, fiatCents)
      const stored = await real.run(Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ amountCrypto: string; storeCommissionCrypto: string; traderRewardCrypto: string }>`SELECT amount_crypto::text,
            store_commission_crypto::text, trader_reward_crypto::text FROM order_history WHERE id = ${outcome.orderId}`))
      expect(stored[0], `${this}: amounts (rate ${world.parameters.rate})`).toEqual({
        amountCrypto: formatMicro(amounts.amountCrypto),
        storeCommissionCrypto: formatMicro(amounts.storeCommission),
        traderRewardCrypto: formatMicro(amounts.traderReward)
      })
      model.addHeldOrder({
        orderId: outcome.orderId,
        incomingOrderId: outcome.incomingOrderId,
        direction,
        storeIndex: this.storeIndex,
        traderIndex,
        amounts
      })
    } else {
      expect({ outcome: outcome._tag, eligible }, `${this}: ${JSON.stringify(outcome)}`).toEqual({
        outcome: "Retrying",
        eligible: []
      })
    }
    await compareWithModel(model, real, this.toString())
  }
  toString = () => `AssignByProcessor(${this.direction}, store ${this.storeIndex}, ${formatCents(this.fiatCents)} RUB)`
}

/** Runs one move through the services and checks it against the model's decision. */
const checkedMove = async (
  model: LedgerModel,
  real: Real,
  label: string,
  order: ModelOrder,
  request: { readonly to: OrderStatus; readonly actor: ModelActor; readonly hasReceipt: boolean },
  effect: Effect.Effect<unknown, { readonly _tag: string }, Services>
) => {
  const outcome = await real.run(outcomeTag(effect))
  const decision = decideMove(order.status, request.to, request.actor, order.direction, request.hasReceipt, order.expired)
  const before = `${order.direction} order ${order.orderId} in ${order.status}`
  expect(outcome, `${label} on ${before}`).toBe(decision.ok ? "ok" : decision.error)
  countOutcome(label, outcome)
  if (decision.ok) model.applyMove(order, request.to, decision.ledger)
  await compareWithModel(model, real, `${label} on ${before}`)
}

class ClientConfirm implements LedgerCommand {
  constructor(readonly pick: number, readonly actor: "merchant" | "customer", readonly withReceipt: boolean) {}
  check = hasOrders
  async run(model: LedgerModel, real: Real) {
    const order = pickOrder(model, this.pick)
    const store = real.world.stores[order.storeIndex]!
    const receipt = this.withReceipt ? png() : undefined
    await checkedMove(model, real, this.toString(), order, {
      to: "pending_trader_confirmation",
      actor: this.actor,
      hasReceipt: this.withReceipt
    }, Effect.flatMap(OrderStatusManager, (manager) =>
      manager.confirmByClient(store.principal, order.incomingOrderId, receipt, { actor: this.actor })))
  }
  toString = () => `ClientConfirm(#${this.pick}, ${this.actor}${this.withReceipt ? "" : ", no receipt"})`
}

class TraderConfirm implements LedgerCommand {
  constructor(readonly pick: number, readonly withReceipt: boolean) {}
  check = hasOrders
  async run(model: LedgerModel, real: Real) {
    const order = pickOrder(model, this.pick)
    const trader = real.world.traders[order.traderIndex]!
    const receipt = this.withReceipt ? png() : undefined
    await checkedMove(model, real, this.toString(), order, { to: "completed", actor: "trader", hasReceipt: this.withReceipt },
      Effect.flatMap(OrderStatusManager, (manager) => manager.confirmByTrader(trader.principal, order.orderId, receipt)))
  }
  toString = () => `TraderConfirm(#${this.pick}${this.withReceipt ? ", receipt" : ""})`
}

/** Cancel or dispute by the order's trader (order id) or its merchant (incoming order id). */
class ReasonMove implements LedgerCommand {
  constructor(readonly pick: number, readonly to: "cancelled" | "dispute", readonly actor: "trader" | "merchant") {}
  check = hasOrders
  async run(model: LedgerModel, real: Real) {
    const order = pickOrder(model, this.pick)
    const actor = this.actor === "trader"
      ? LifecycleActor.Trader(real.world.traders[order.traderIndex]!.principal)
      : LifecycleActor.Store({ store: real.world.stores[order.storeIndex]!.principal, role: "merchant" })
    const id = this.actor === "trader" ? order.orderId : order.incomingOrderId
    const to = this.to
    await checkedMove(model, real, this.toString(), order, { to, actor: this.actor, hasReceipt: false },
      Effect.flatMap(OrderStatusManager, (manager) =>
        to === "cancelled" ? manager.cancel(actor, id, "model says so") : manager.dispute(actor, id, "model says so")))
  }
  toString = () => `${this.to === "cancelled" ? "Cancel" : "Dispute"}(#${this.pick}, ${this.actor})`
}

/** Admin or support moves the order to any status; the table decides (resolutions, cancels, nonsense). */
class StaffMove implements LedgerCommand {
  constructor(readonly pick: number, readonly role: "admin" | "support", readonly to: OrderStatus) {}
  check = hasOrders
  async run(model: LedgerModel, real: Real) {
    const order = pickOrder(model, this.pick)
    const user = this.role === "admin" ? real.world.admin : real.world.support
    const to = this.to
    await checkedMove(model, real, this.toString(), order, { to, actor: this.role, hasReceipt: false },
      Effect.flatMap(OrderStatusManager, (manager) => manager.adminTransition(user, order.orderId, to, "resolved by the model")))
  }
  toString = () => `StaffMove(#${this.pick}, ${this.role} → ${this.to})`
}

/**
 * Timeouts. `mark` moves expires_at into the past (the order stays open until a worker looks);
 * `expire` runs the state machine's expire on the order; `worker` runs one round of the timeout worker.
 */
class Timeout implements LedgerCommand {
  constructor(readonly pick: number, readonly mark: boolean, readonly via: "none" | "expire" | "worker") {}
  check = hasOrders
  async run(model: LedgerModel, real: Real) {
    const order = pickOrder(model, this.pick)
    if (this.mark) {
      await real.run(Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql`UPDATE order_history SET expires_at = now() - interval '1 second' WHERE id = ${order.orderId}`))
      order.expired = true
    }
    const due = model.orders.filter((candidate) => isOpen(candidate.status) && candidate.expired)
    const moveOf = (candidate: ModelOrder) => {
      const to = candidate.status === "assigned" ? "failed" as const : "requires_attention" as const
      const decision = decideMove(candidate.status, to, "system", candidate.direction, false, true)
      if (!decision.ok) throw new Error(`model: the system may not expire ${candidate.status}`)
      model.applyMove(candidate, to, decision.ledger)
      return to
    }
    if (this.via === "expire") {
      const before = order.status
      const outcome = await real.run(Effect.flatMap(OrderStatusManager, (manager) => manager.expire(order.orderId)))
      const expected = isOpen(order.status) && order.expired ? moveOf(order) : "not-expired"
      expect(outcome, `${this} on ${order.direction} order ${order.orderId} in ${before}`).toBe(expected)
      countOutcome("Timeout.expire", outcome)
    }
    if (this.via === "worker") {
      const moved = await real.run(expireDueOrders)
      due.forEach(moveOf)
      expect(moved, `${this}: orders the timeout worker moved`).toBe(due.length)
      countOutcome("Timeout.worker", `moved ${moved}`)
    }
    await compareWithModel(model, real, this.toString())
  }
  toString = () => `Timeout(#${this.pick}${this.mark ? ", mark expired" : ""}, ${this.via})`
}

/** Another tenant acts on the order: 404, nothing written. */
class ForeignMove implements LedgerCommand {
  constructor(readonly pick: number, readonly kind: "trader-confirm" | "store-cancel") {}
  check = hasOrders
  async run(model: LedgerModel, real: Real) {
    const order = pickOrder(model, this.pick)
    const effect = this.kind === "trader-confirm"
      ? Effect.flatMap(OrderStatusManager, (manager) =>
        manager.confirmByTrader(real.world.traders[(order.traderIndex + 1) % TRADER_COUNT]!.principal, order.orderId, png()))
      : Effect.flatMap(OrderStatusManager, (manager) =>
        manager.cancel(
          LifecycleActor.Store({ store: real.world.stores[(order.storeIndex + 1) % STORE_COUNT]!.principal, role: "merchant" }),
          order.incomingOrderId,
          "not mine"
        ))
    const outcome = await real.run(outcomeTag(effect))
    expect(outcome, `${this}`).toBe("OrderNotFound")
    countOutcome(this.toString(), outcome)
    await compareWithModel(model, real, this.toString())
  }
  toString = () => `ForeignMove(#${this.pick}, ${this.kind})`
}

/** Repeats what already happened to the order's money, and its assignment: every repeat is a no-op. */
class Replay implements LedgerCommand {
  constructor(readonly pick: number) {}
  check = hasOrders
  async run(model: LedgerModel, real: Real) {
    const order = pickOrder(model, this.pick)
    const outcome = await real.run(Effect.gen(function*() {
      const balances = yield* BalanceManager
      const processor = yield* OrderProcessor
      const ledger = order.ledger === "held"
        ? yield* atomic("model.replay", balances.hold(order.orderId))
        : order.ledger === "posted"
        ? yield* balances.updateBalancesForCompletedOrder(order.orderId)
        : yield* atomic("model.replay", balances.release(order.orderId))
      const processed = yield* processor.processIncomingOrder(order.incomingOrderId)
      return { ledger, processed: processed._tag }
    }).pipe(Effect.orDie))
    expect(outcome, `${this} of a ${order.ledger} order`).toEqual({
      ledger: { held: "already-held", posted: "already-posted", voided: "already-voided" }[order.ledger],
      processed: "AlreadyProcessed"
    })
    countOutcome(this.toString(), outcome.ledger)
    await compareWithModel(model, real, this.toString())
  }
  toString = () => `Replay(#${this.pick})`
}

// ---- arbitraries -----------------------------------------------------------------------------------

const direction = fc.constantFrom<Direction>("payin", "payout")
const fiatCents = fc.bigInt({ min: 10_000n, max: 2_000_000n }) // 100.00 … 20,000.00 RUB, inside the requisites' range
const micro = fc.bigInt({ min: 1n, max: 600_000_000n }) // up to 600 USDT
const pick = fc.nat({ max: 1000 })
const accountKind = fc.constantFrom<"store" | "trader">("store", "trader")

const deposit = fc.tuple(accountKind, fc.nat({ max: 5 }), micro).map(([kind, index, amount]) => new Deposit(kind, index, amount))
const assignDirect = fc.tuple(direction, fc.nat({ max: STORE_COUNT - 1 }), fc.nat({ max: TRADER_COUNT - 1 }), fiatCents)
  .map(([d, store, trader, cents]) => new AssignDirect(d, store, trader, cents))
const assignByProcessor = fc.tuple(direction, fc.nat({ max: STORE_COUNT - 1 }), fiatCents)
  .map(([d, store, cents]) => new AssignByProcessor(d, store, cents))

const clientConfirm = fc.tuple(pick, fc.constantFrom("merchant" as const, "customer" as const), fc.boolean())
  .map(([p, actor, receipt]) => new ClientConfirm(p, actor, receipt))
const timeout = fc.tuple(pick, fc.boolean(), fc.constantFrom("none" as const, "expire" as const, "worker" as const))
  .map(([p, mark, via]) => new Timeout(p, mark, via))

// Orders are what the other commands act on: assignments (and the deposits they need) come up more often.
const commandArbitraries: Array<fc.Arbitrary<LedgerCommand>> = [
  deposit,
  deposit,
  assignDirect,
  assignDirect,
  assignByProcessor,
  assignByProcessor,
  fc.tuple(accountKind, fc.nat({ max: 5 }), fc.constantFrom("exact" as const, "over" as const, "amount" as const), micro)
    .map(([kind, index, mode, amount]) => new Withdraw(kind, index, mode, amount)),
  clientConfirm,
  clientConfirm,
  fc.tuple(pick, fc.boolean()).map(([p, receipt]) => new TraderConfirm(p, receipt)),
  fc.tuple(pick, fc.constantFrom("cancelled" as const, "dispute" as const), fc.constantFrom("trader" as const, "merchant" as const))
    .map(([p, to, actor]) => new ReasonMove(p, to, actor)),
  fc.tuple(pick, fc.constantFrom("admin" as const, "support" as const), fc.constantFrom(...allStatuses))
    .map(([p, role, to]) => new StaffMove(p, role, to)),
  timeout,
  timeout,
  fc.tuple(pick, fc.constantFrom("trader-confirm" as const, "store-cancel" as const)).map(([p, kind]) => new ForeignMove(p, kind)),
  pick.map((p) => new Replay(p))
]

// Rates with 1 to 8 decimals; percentages where the trader's reward sometimes exceeds the store's
// commission (the platform then loses on the order and may go below zero).
const rate = fc.constantFrom("92.5", "97.13", "63.33333333", "89.98765432", "100", "12.5")
const percent = fc.constantFrom("0", "1.5", "2", "3", "2.3333", "4.9999", "7.25")
const pctPair = fc.record({ payin: percent, payout: percent })
const worldParameters: fc.Arbitrary<WorldParameters> = fc.record({
  rate,
  storePcts: fc.array(pctPair, { minLength: STORE_COUNT, maxLength: STORE_COUNT }),
  traderPcts: fc.array(pctPair, { minLength: TRADER_COUNT, maxLength: TRADER_COUNT })
})

/** Opening deposits (through the ledger), one per account, so that most runs can assign from the first command. */
const openingDeposits = fc.tuple(
  fc.array(fc.bigInt({ min: 0n, max: 2_000_000_000n }), { minLength: STORE_COUNT, maxLength: STORE_COUNT }),
  fc.array(fc.bigInt({ min: 0n, max: 2_000_000_000n }), { minLength: TRADER_COUNT, maxLength: TRADER_COUNT })
)

// ---------------------------------------------------------------------------------------------------

layer(TestLayer, { excludeTestServices: true })("ledger model", (it) => {
  it.effect(`${RUNS} random runs of up to ${COMMANDS_MAX} commands: the database equals the model after every step`, () =>
    Effect.gen(function*() {
      const runtime = yield* Effect.runtime<Services>()
      const run = <A, E>(effect: Effect.Effect<A, E, Services>) => Runtime.runPromise(runtime)(effect.pipe(quiet))
      const stats = { runs: 0, commands: 0, orders: 0, statuses: {} as Record<string, number> }
      const startedAtMs = Date.now()

      const property = fc.asyncProperty(
        worldParameters,
        openingDeposits,
        fc.commands(commandArbitraries, { maxCommands: COMMANDS_MAX, size: "max" }),
        async (parameters, deposits, commands) => {
          const world = await run(buildWorld(parameters))
          const real: Real = { world, run }
          const model = new LedgerModel(STORE_COUNT, TRADER_COUNT)
          const [storeDeposits, traderDeposits] = deposits
          for (const [index, amount] of storeDeposits.entries()) {
            if (amount > 0n) await new Deposit("store", index, amount).run(model, real)
          }
          for (const [index, amount] of traderDeposits.entries()) {
            if (amount > 0n) await new Deposit("trader", index, amount).run(model, real)
          }
          const executed: Array<string> = []
          const counted = [...commands].map((command): LedgerCommand => ({
            check: (m) => command.check(m),
            run: async (m, r) => {
              executed.push(command.toString())
              await command.run(m, r)
            },
            toString: () => command.toString()
          }))
          await fc.asyncModelRun(() => ({ model, real }), counted)
          const report = await run(Effect.flatMap(Reconciliation, (reconciliation) => reconciliation.run()))
          expect(report.differences, "reconciliation differences").toEqual([])
          expect(report.ok).toBe(true)
          const sum = (values: ReadonlyArray<{ balance: bigint }>) => values.reduce((total, account) => total + account.balance, 0n)
          expect(report.totals).toEqual({
            stores: formatMicro(sum(model.stores)),
            traders: formatMicro(sum(model.traders)),
            platform: formatMicro(model.platform),
            externalNet: formatMicro(model.externalNet)
          })
          stats.runs++
          stats.commands += executed.length
          stats.orders += model.orders.length
          for (const order of model.orders) stats.statuses[order.status] = (stats.statuses[order.status] ?? 0) + 1
        }
      )
      yield* Effect.promise(() => fc.assert(property, {
        numRuns: RUNS,
        // A failing run shrinks against the database (each step resets it); bound the whole search.
        interruptAfterTimeLimit: 140_000,
        markInterruptAsFailure: true
      }))
      // Straight to stdout: the config's `silent: "passed-only"` hides console output of passing
      // tests, and these numbers are wanted from every run.
      process.stdout.write(`${JSON.stringify({ ledgerModel: { ...stats, elapsedMs: Date.now() - startedAtMs, outcomes } })}\n`)
      expect(stats.runs).toBeGreaterThanOrEqual(RUNS)
    }), 170_000)
})
