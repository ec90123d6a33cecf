import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { Direction, OrderStatus } from "../../../src/domain/Status.js"
import { formatMicro, holdAmountOf, parseMicro } from "./ledgerModel.js"

/**
 * The ledger as the tables hold it, read in one REPEATABLE READ snapshot, and the SPEC §8 invariants
 * recomputed from it independently of `Reconciliation` (a second place that asserts them, Tiger
 * Style): every order held once and then posted or voided at most once, matching its status; every
 * account's frozen amount equal to its open holds; no balance below its holds; and the sum of all
 * balances equal to what came in from outside.
 */

export interface AccountRow {
  readonly balance: bigint
  readonly frozen: bigint
}

export interface OrderLedgerRow {
  readonly orderId: number
  readonly incomingOrderId: number
  readonly storeId: number
  readonly traderId: number
  readonly direction: Direction
  readonly status: OrderStatus
  readonly amountCrypto: bigint
  readonly storeCommission: bigint
  readonly traderReward: bigint
  readonly holds: number
  readonly posts: number
  readonly voids: number
}

export interface LedgerSnapshot {
  readonly stores: ReadonlyMap<number, AccountRow>
  readonly traders: ReadonlyMap<number, AccountRow>
  readonly platform: bigint
  readonly externalNet: bigint
  readonly orders: ReadonlyMap<number, OrderLedgerRow>
}

interface RawAccount {
  readonly id: number
  readonly balance: string
  readonly frozen: string
}

interface RawOrder {
  readonly id: number
  readonly incomingOrderId: number
  readonly storeId: number
  readonly traderId: number
  readonly direction: Direction
  readonly status: OrderStatus
  readonly amountCrypto: string
  readonly storeCommissionCrypto: string
  readonly traderRewardCrypto: string
  readonly holds: number
  readonly posts: number
  readonly voids: number
}

const accounts = (rows: ReadonlyArray<RawAccount>) =>
  new Map(rows.map((row) => [row.id, { balance: parseMicro(row.balance), frozen: parseMicro(row.frozen) }] as const))

export const readLedgerSnapshot = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return yield* sql.withTransaction(Effect.gen(function*() {
    yield* sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY`
    const stores = yield* sql<RawAccount>`SELECT store_id AS id, balance::text, frozen::text FROM balance_stores`
    const traders = yield* sql<RawAccount>`SELECT trader_id AS id, balance::text, frozen::text FROM balance_traders`
    const [platform] = yield* sql<{ balance: string }>`SELECT balance::text FROM balance_platform WHERE id = 1`
    const [external] = yield* sql<{ net: string }>`SELECT coalesce(sum(delta), 0)::text AS net FROM balance_external_history`
    const orders = yield* sql<RawOrder>`SELECT o.id, o.incoming_order_id, o.store_id, o.trader_id, o.direction, o.status,
        o.amount_crypto::text, o.store_commission_crypto::text, o.trader_reward_crypto::text,
        count(l.id) FILTER (WHERE l.kind = 'hold')::int AS holds,
        count(l.id) FILTER (WHERE l.kind = 'post')::int AS posts,
        count(l.id) FILTER (WHERE l.kind = 'void')::int AS voids
      FROM order_history o LEFT JOIN ledger_transfers l ON l.order_id = o.id
      GROUP BY o.id`
    return {
      stores: accounts(stores),
      traders: accounts(traders),
      platform: parseMicro(platform!.balance),
      externalNet: parseMicro(external!.net),
      orders: new Map(orders.map((row) => [row.id, {
        orderId: row.id,
        incomingOrderId: row.incomingOrderId,
        storeId: row.storeId,
        traderId: row.traderId,
        direction: row.direction,
        status: row.status,
        amountCrypto: parseMicro(row.amountCrypto),
        storeCommission: parseMicro(row.storeCommissionCrypto),
        traderReward: parseMicro(row.traderRewardCrypto),
        holds: row.holds,
        posts: row.posts,
        voids: row.voids
      }] as const))
    } satisfies LedgerSnapshot
  }))
}).pipe(Effect.orDie)

/** What each status says about the order's money: still held, posted once, or voided once. */
const expectedLedgerOf = (status: OrderStatus): "held" | "posted" | "voided" =>
  status === "completed" ? "posted" : status === "cancelled" || status === "failed" ? "voided" : "held"

/** Every broken invariant as one readable line; an empty list means the ledger is sound. */
export const ledgerViolations = (snapshot: LedgerSnapshot): ReadonlyArray<string> => {
  const violations: Array<string> = []
  const openHolds = new Map<string, bigint>()
  for (const order of snapshot.orders.values()) {
    const where = `order ${order.orderId} (${order.direction}, ${order.status})`
    if (order.holds !== 1) violations.push(`${where}: ${order.holds} holds`)
    if (order.posts > 1) violations.push(`${where}: posted ${order.posts} times`)
    if (order.voids > 1) violations.push(`${where}: voided ${order.voids} times`)
    if (order.posts > 0 && order.voids > 0) violations.push(`${where}: both posted and voided`)
    const actual = order.posts > 0 ? "posted" : order.voids > 0 ? "voided" : "held"
    const expected = expectedLedgerOf(order.status)
    if (actual !== expected) violations.push(`${where}: ledger says ${actual}, status says ${expected}`)
    if (actual === "held") {
      const account = order.direction === "payin" ? `trader:${order.traderId}` : `store:${order.storeId}`
      const amount = holdAmountOf(order.direction, {
        amountCrypto: order.amountCrypto,
        storeCommission: order.storeCommission,
        traderReward: order.traderReward
      })
      openHolds.set(account, (openHolds.get(account) ?? 0n) + amount)
    }
  }
  const checkAccounts = (kind: "store" | "trader", rows: ReadonlyMap<number, AccountRow>) => {
    for (const [id, row] of rows) {
      const held = openHolds.get(`${kind}:${id}`) ?? 0n
      if (row.frozen < 0n) violations.push(`${kind} ${id}: frozen ${formatMicro(row.frozen)} < 0`)
      if (row.balance < row.frozen) {
        violations.push(`${kind} ${id}: balance ${formatMicro(row.balance)} below its holds ${formatMicro(row.frozen)}`)
      }
      if (row.frozen !== held) {
        violations.push(`${kind} ${id}: frozen ${formatMicro(row.frozen)} but open holds sum to ${formatMicro(held)}`)
      }
    }
  }
  checkAccounts("store", snapshot.stores)
  checkAccounts("trader", snapshot.traders)
  const sum = (rows: ReadonlyMap<number, AccountRow>) => [...rows.values()].reduce((total, row) => total + row.balance, 0n)
  const total = sum(snapshot.stores) + sum(snapshot.traders) + snapshot.platform
  if (total !== snapshot.externalNet) {
    violations.push(`balances sum to ${formatMicro(total)} but the external net is ${formatMicro(snapshot.externalNet)}`)
  }
  return violations
}

export const checkLedger = Effect.map(readLedgerSnapshot, (snapshot) => ({ snapshot, violations: ledgerViolations(snapshot) }))

/** Counts of orders by status, for reports. */
export const statusCounts = (snapshot: LedgerSnapshot): Record<string, number> => {
  const counts: Record<string, number> = {}
  for (const order of snapshot.orders.values()) counts[order.status] = (counts[order.status] ?? 0) + 1
  return counts
}

export const totalBalance = (snapshot: LedgerSnapshot): bigint =>
  [...snapshot.stores.values(), ...snapshot.traders.values()].reduce((total, row) => total + row.balance, snapshot.platform)
