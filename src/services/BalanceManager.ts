import { SqlClient, type SqlError } from "@effect/sql"
import { BigDecimal, Effect, Schema } from "effect"
import { InsufficientBalance, InvalidTransition, NotFound } from "../domain/Errors.js"
import {
  completionDeltas,
  CryptoFromNumeric,
  DecimalFromNumeric,
  formatCrypto,
  formatFiat,
  holdAmount,
  type OrderAmounts
} from "../domain/Money.js"
import type { UserPrincipal } from "../domain/Principal.js"
import { Direction } from "../domain/Status.js"
import { atomic, dieOnInfrastructure } from "./Atomic.js"
import { AuditLogger } from "./AuditLogger.js"

export type AccountKind = "store" | "trader"
export interface AccountRef {
  readonly kind: AccountKind
  readonly id: number
}

export interface BalanceView {
  readonly balance: string
  readonly frozen: string
  readonly available: string
}

const BalanceRow = Schema.Struct({ balance: DecimalFromNumeric, frozen: DecimalFromNumeric })
const decodeBalance = Schema.decodeUnknown(Schema.Array(BalanceRow))

const OrderLedgerRow = Schema.Struct({
  id: Schema.Number,
  storeId: Schema.Number,
  traderId: Schema.Number,
  direction: Direction,
  amountFiat: DecimalFromNumeric,
  fiatCurrency: Schema.String,
  amountCrypto: CryptoFromNumeric,
  storeCommissionCrypto: CryptoFromNumeric,
  traderRewardCrypto: CryptoFromNumeric
})
type OrderLedgerRow = typeof OrderLedgerRow.Type
const decodeOrder = Schema.decodeUnknown(Schema.Array(OrderLedgerRow))

export const balanceView = (row: { readonly balance: BigDecimal.BigDecimal; readonly frozen: BigDecimal.BigDecimal }): BalanceView => ({
  balance: formatCrypto(row.balance),
  frozen: formatCrypto(row.frozen),
  available: formatCrypto(BigDecimal.subtract(row.balance, row.frozen))
})

const amountsOf = (order: OrderLedgerRow): OrderAmounts => ({
  amountCrypto: order.amountCrypto,
  storeCommissionCrypto: order.storeCommissionCrypto,
  traderRewardCrypto: order.traderRewardCrypto
})

/** What happened to an order's money: nothing, held, then exactly one of posted or voided. */
export type LedgerState = "none" | "held" | "posted" | "voided"

/**
 * The only writer of balances. Every movement is a `ledger_transfers` row plus one history row per
 * account touched, with the account's balance/frozen after the change. `UNIQUE (order_id, kind)`
 * makes hold, post and void happen at most once per order even if a caller retries.
 * Lock order is fixed — the order row, then store, then trader, then platform — so no two
 * transactions wait on each other in a cycle.
 */
export class BalanceManager extends Effect.Service<BalanceManager>()("BalanceManager", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* AuditLogger

    const table = (kind: AccountKind) => kind === "store" ? sql`balance_stores` : sql`balance_traders`
    const keyColumn = (kind: AccountKind) => kind === "store" ? sql`store_id` : sql`trader_id`
    const historyInsert = (kind: AccountKind, row: {
      accountId: number
      transferId: number
      orderId: number | null
      delta: BigDecimal.BigDecimal
      frozenDelta: BigDecimal.BigDecimal
      balanceAfter: BigDecimal.BigDecimal
      frozenAfter: BigDecimal.BigDecimal
      reason: string
    }) => {
      const values = {
        transferId: row.transferId,
        orderId: row.orderId,
        delta: formatCrypto(row.delta),
        frozenDelta: formatCrypto(row.frozenDelta),
        balanceAfter: formatCrypto(row.balanceAfter),
        frozenAfter: formatCrypto(row.frozenAfter),
        reason: row.reason
      }
      return kind === "store"
        ? sql`INSERT INTO balance_store_history ${sql.insert({ storeId: row.accountId, ...values })}`
        : sql`INSERT INTO balance_trader_crypto_history ${sql.insert({ traderId: row.accountId, ...values })}`
    }

    const newTransfer = (kind: string, orderId: number | null, reason: string, createdBy: number | null) =>
      sql<{ id: number }>`INSERT INTO ledger_transfers ${sql.insert({ kind, orderId, reason, createdBy })} RETURNING id`
        .pipe(Effect.map((rows) => rows[0]!.id))

    /**
     * Applies (delta, frozenDelta) to one account row and returns the values after. The WHERE clause
     * re-checks availability atomically; the CHECK constraint is the last line of defence.
     */
    const applyToAccount = (
      account: AccountRef,
      delta: BigDecimal.BigDecimal,
      frozenDelta: BigDecimal.BigDecimal,
      requireAvailable: BigDecimal.BigDecimal | null
    ) =>
      Effect.gen(function*() {
        const guard = requireAvailable === null
          ? sql``
          : sql`AND balance - frozen >= ${formatCrypto(requireAvailable)}::numeric`
        const rows = yield* sql`UPDATE ${table(account.kind)}
          SET balance = balance + ${formatCrypto(delta)}::numeric,
              frozen = frozen + ${formatCrypto(frozenDelta)}::numeric,
              updated_at = now()
          WHERE ${keyColumn(account.kind)} = ${account.id} ${guard}
          RETURNING balance, frozen`.pipe(Effect.flatMap(decodeBalance))
        if (rows[0] === undefined) {
          const exists = yield* sql`SELECT 1 FROM ${table(account.kind)} WHERE ${keyColumn(account.kind)} = ${account.id}`
          return yield* exists.length === 0
            ? Effect.fail(new NotFound({ entity: account.kind, message: `${account.kind} ${account.id} not found` }))
            : Effect.fail(new InsufficientBalance({
              account: `${account.kind}:${account.id}`,
              message: `${account.kind} ${account.id} has less than ${formatCrypto(requireAvailable!)} USDT available`
            }))
        }
        return rows[0]
      })

    const applyToPlatform = (delta: BigDecimal.BigDecimal) =>
      sql`UPDATE balance_platform SET balance = balance + ${formatCrypto(delta)}::numeric, updated_at = now()
          WHERE id = 1 RETURNING balance, frozen`.pipe(Effect.flatMap(decodeBalance), Effect.map((rows) => rows[0]!))

    const getBalance = Effect.fn("BalanceManager.getBalance")(function*(account: AccountRef) {
      const rows = yield* sql`SELECT balance, frozen FROM ${table(account.kind)} WHERE ${keyColumn(account.kind)} = ${account.id}`
        .pipe(Effect.flatMap(decodeBalance))
      if (rows[0] === undefined) {
        return yield* new NotFound({ entity: account.kind, message: `${account.kind} ${account.id} not found` })
      }
      return balanceView(rows[0])
    }, dieOnInfrastructure)

    /** Admin top-up or payout of an account against the outside world (`balance_external_history`). */
    const moveExternal = (kind: "deposit" | "withdrawal") =>
      Effect.fn(`BalanceManager.${kind}`)(function*(account: AccountRef, amount: BigDecimal.BigDecimal, actor: UserPrincipal, note: string | null) {
        return yield* atomic(`balance.${kind}`, Effect.gen(function*() {
          const signed = kind === "deposit" ? amount : BigDecimal.negate(amount)
          const transferId = yield* newTransfer(kind, null, note ?? `admin ${kind}`, actor.userId)
          const after = yield* applyToAccount(account, signed, BigDecimal.fromBigInt(0n), kind === "withdrawal" ? amount : null)
          yield* historyInsert(account.kind, {
            accountId: account.id,
            transferId,
            orderId: null,
            delta: signed,
            frozenDelta: BigDecimal.fromBigInt(0n),
            balanceAfter: after.balance,
            frozenAfter: after.frozen,
            reason: kind
          })
          yield* sql`INSERT INTO balance_external_history ${
            sql.insert({ transferId, delta: formatCrypto(signed), reason: `${kind} ${account.kind}:${account.id}` })
          }`
          yield* audit.logAction({
            action: `admin.${account.kind}_${kind}`,
            userId: actor.userId,
            userRole: actor.role,
            targetEntity: account.kind,
            targetId: account.id,
            details: { amount: formatCrypto(amount), note }
          })
          return balanceView(after)
        }))
      }, dieOnInfrastructure)

    const loadOrderForUpdate = (orderId: number) =>
      sql`SELECT id, store_id, trader_id, direction, amount_fiat, fiat_currency, amount_crypto,
                 store_commission_crypto, trader_reward_crypto
          FROM order_history WHERE id = ${orderId} FOR UPDATE`.pipe(
        Effect.flatMap(decodeOrder),
        Effect.flatMap((rows) =>
          rows[0] === undefined
            ? Effect.fail(new NotFound({ entity: "order", message: `order ${orderId} not found` }))
            : Effect.succeed(rows[0])
        )
      )

    const ledgerStateOf = (orderId: number) =>
      sql<{ kind: string }>`SELECT kind FROM ledger_transfers WHERE order_id = ${orderId}`.pipe(
        Effect.map((rows): LedgerState => {
          const kinds = new Set(rows.map((row) => row.kind))
          return kinds.has("post") ? "posted" : kinds.has("void") ? "voided" : kinds.has("hold") ? "held" : "none"
        })
      )

    const holdAccountOf = (order: OrderLedgerRow): AccountRef =>
      order.direction === "payin" ? { kind: "trader", id: order.traderId } : { kind: "store", id: order.storeId }

    /** Freezes the order's hold (SPEC §5.5). Runs in the caller's transaction; a second call is a no-op. */
    const hold = Effect.fn("BalanceManager.hold")(function*(orderId: number) {
      const order = yield* loadOrderForUpdate(orderId)
      if ((yield* ledgerStateOf(orderId)) !== "none") return "already-held" as const
      const { amount } = holdAmount(order.direction, amountsOf(order))
      const account = holdAccountOf(order)
      const transferId = yield* newTransfer("hold", orderId, `hold for ${order.direction} order`, null)
      const after = yield* applyToAccount(account, BigDecimal.fromBigInt(0n), amount, amount)
      yield* historyInsert(account.kind, {
        accountId: account.id,
        transferId,
        orderId,
        delta: BigDecimal.fromBigInt(0n),
        frozenDelta: amount,
        balanceAfter: after.balance,
        frozenAfter: after.frozen,
        reason: "hold"
      })
      return "held" as const
    })

    /** Releases the hold without moving money (cancel, fail, timeout). A second call is a no-op. */
    const release = Effect.fn("BalanceManager.void")(function*(orderId: number) {
      const order = yield* loadOrderForUpdate(orderId)
      const state = yield* ledgerStateOf(orderId)
      if (state === "voided" || state === "none") return state === "voided" ? "already-voided" as const : "nothing-held" as const
      if (state === "posted") {
        return yield* new InvalidTransition({ from: "posted", to: "voided", message: `order ${orderId} is already posted` })
      }
      const { amount } = holdAmount(order.direction, amountsOf(order))
      const account = holdAccountOf(order)
      const transferId = yield* newTransfer("void", orderId, "hold released", null)
      const released = BigDecimal.negate(amount)
      const after = yield* applyToAccount(account, BigDecimal.fromBigInt(0n), released, null)
      yield* historyInsert(account.kind, {
        accountId: account.id,
        transferId,
        orderId,
        delta: BigDecimal.fromBigInt(0n),
        frozenDelta: released,
        balanceAfter: after.balance,
        frozenAfter: after.frozen,
        reason: "void"
      })
      return "voided" as const
    })

    /**
     * Completion: the hold is consumed and store, trader and platform move by deltas that sum to
     * zero (SPEC §5.5), in the caller's transaction. Exactly once: a posted order is a no-op.
     */
    const post = Effect.fn("BalanceManager.post")(function*(orderId: number) {
      const order = yield* loadOrderForUpdate(orderId)
      const state = yield* ledgerStateOf(orderId)
      if (state === "posted") return "already-posted" as const
      if (state !== "held") {
        return yield* new InvalidTransition({ from: state, to: "posted", message: `order ${orderId} has no active hold` })
      }
      const amounts = amountsOf(order)
      const deltas = completionDeltas(order.direction, amounts)
      const { amount: heldAmount } = holdAmount(order.direction, amounts)
      const transferId = yield* newTransfer("post", orderId, `completed ${order.direction} order`, null)
      const zero = BigDecimal.fromBigInt(0n)
      // Fixed lock order: store, trader, platform.
      const storeFrozenDelta = order.direction === "payout" ? BigDecimal.negate(heldAmount) : zero
      const traderFrozenDelta = order.direction === "payin" ? BigDecimal.negate(heldAmount) : zero
      const storeAfter = yield* applyToAccount({ kind: "store", id: order.storeId }, deltas.store, storeFrozenDelta, null)
      const traderAfter = yield* applyToAccount({ kind: "trader", id: order.traderId }, deltas.trader, traderFrozenDelta, null)
      const platformAfter = yield* applyToPlatform(deltas.platform)
      yield* historyInsert("store", {
        accountId: order.storeId, transferId, orderId, delta: deltas.store, frozenDelta: storeFrozenDelta,
        balanceAfter: storeAfter.balance, frozenAfter: storeAfter.frozen, reason: "post"
      })
      yield* historyInsert("trader", {
        accountId: order.traderId, transferId, orderId, delta: deltas.trader, frozenDelta: traderFrozenDelta,
        balanceAfter: traderAfter.balance, frozenAfter: traderAfter.frozen, reason: "post"
      })
      yield* sql`INSERT INTO balance_platform_history ${
        sql.insert({ transferId, orderId, delta: formatCrypto(deltas.platform), balanceAfter: formatCrypto(platformAfter.balance), reason: "post" })
      }`
      // The fiat leg happened off-platform: PayIn the trader received it, PayOut the trader sent it.
      const fiat = order.direction === "payin" ? order.amountFiat : BigDecimal.negate(order.amountFiat)
      yield* sql`INSERT INTO balance_trader_fiat_history ${
        sql.insert({ traderId: order.traderId, orderId, currency: order.fiatCurrency, delta: formatFiat(fiat), reason: order.direction })
      }`
      return "posted" as const
    })

    /** Standalone completion posting for callers outside a transaction (idempotent follow-up). */
    const updateBalancesForCompletedOrder = Effect.fn("BalanceManager.updateBalancesForCompletedOrder")(
      function*(orderId: number) {
        return yield* atomic("balance.post", post(orderId))
      }
    )

    return {
      getBalance,
      deposit: moveExternal("deposit"),
      withdraw: moveExternal("withdrawal"),
      hold,
      release,
      post,
      ledgerStateOf,
      updateBalancesForCompletedOrder
    } as const
  }),
  dependencies: [AuditLogger.Default]
}) {}

export type BalanceError = InsufficientBalance | InvalidTransition | NotFound | SqlError.SqlError
