import type { Direction, OrderStatus } from "../../../src/domain/Status.js"

/**
 * A reference model of the order state machine and the two-phase ledger (SPEC §5.5, §5.8), in
 * plain TypeScript with bigint micro-units. It is written from the SPEC, not from `src/`: the
 * model-based test compares the product against it, so sharing code would let a bug agree with
 * itself. Money is an integer count of 10^-6 USDT ("micro"); fiat is an integer count of cents.
 */

export const MICRO_PER_UNIT = 1_000_000n

// ---------------------------------------------------------------------------------------------
// Decimal strings ↔ scaled integers

/** "92.5" at scale 8 → 9250000000n. Rejects more decimals than `scale` (nothing is ever rounded here). */
export const parseScaled = (text: string, scale: number): bigint => {
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text.trim())
  if (match === null) throw new Error(`not a plain decimal: ${JSON.stringify(text)}`)
  const [, sign, integerPart, fractionPart = ""] = match
  if (fractionPart.length > scale) {
    // NUMERIC aggregates may carry trailing zeros beyond the column's scale.
    if (!/^0*$/.test(fractionPart.slice(scale))) throw new Error(`${text} has more than ${scale} decimals`)
  }
  const digits = BigInt(`${integerPart}${fractionPart.slice(0, scale).padEnd(scale, "0")}`)
  return sign === "-" ? -digits : digits
}

export const parseMicro = (text: string): bigint => parseScaled(text, 6)

/** 12345678n at scale 6 → "12.345678". */
export const formatScaled = (value: bigint, scale: number): string => {
  const negative = value < 0n
  const digits = (negative ? -value : value).toString().padStart(scale + 1, "0")
  const text = `${digits.slice(0, digits.length - scale)}.${digits.slice(digits.length - scale)}`
  return negative ? `-${text}` : text
}

export const formatMicro = (value: bigint): string => formatScaled(value, 6)
export const formatCents = (value: bigint): string => formatScaled(value, 2)

/** numerator / denominator rounded half-even; both non-negative, denominator > 0. */
export const divideHalfEven = (numerator: bigint, denominator: bigint): bigint => {
  if (numerator < 0n || denominator <= 0n) throw new Error("divideHalfEven expects a non-negative ratio")
  const quotient = numerator / denominator
  const twiceRemainder = 2n * (numerator % denominator)
  if (twiceRemainder < denominator) return quotient
  if (twiceRemainder > denominator) return quotient + 1n
  return quotient % 2n === 0n ? quotient : quotient + 1n
}

// ---------------------------------------------------------------------------------------------
// Amounts (SPEC §5.5: crypto to 6 decimals, half-even, once per amount)

export interface Amounts {
  /** A */
  readonly amountCrypto: bigint
  /** s */
  readonly storeCommission: bigint
  /** t */
  readonly traderReward: bigint
}

/**
 * A = round6(fiat / rate), s = round6(A × storePct / 100), t = round6(A × traderPct / 100).
 * fiat in cents, rate in 10^-8, percentages in 10^-4; results in micro.
 */
export const orderAmounts = (fiatCents: bigint, rateUnits: bigint, storePctUnits: bigint, traderPctUnits: bigint): Amounts => {
  // (c / 100) / (r / 10^8) × 10^6 = c × 10^12 / r
  const amountCrypto = divideHalfEven(fiatCents * 10n ** 12n, rateUnits)
  // A × (p / 10^4) / 100 = A × p / 10^6
  const storeCommission = divideHalfEven(amountCrypto * storePctUnits, 10n ** 6n)
  const traderReward = divideHalfEven(amountCrypto * traderPctUnits, 10n ** 6n)
  return { amountCrypto, storeCommission, traderReward }
}

/** PayIn holds the trader's A − t; PayOut holds the store's A + s. */
export const holdAmountOf = (direction: Direction, amounts: Amounts): bigint =>
  direction === "payin" ? amounts.amountCrypto - amounts.traderReward : amounts.amountCrypto + amounts.storeCommission

// ---------------------------------------------------------------------------------------------
// The state machine, transcribed from SPEC §5.8

export type ModelActor = "trader" | "merchant" | "customer" | "support" | "admin" | "system"
export type LedgerEffect = "none" | "post" | "void"
export type Refusal = "InvalidTransition" | "ValidationError"
export type MoveDecision =
  | { readonly ok: true; readonly ledger: LedgerEffect }
  | { readonly ok: false; readonly error: Refusal }

export const allStatuses: ReadonlyArray<OrderStatus> = [
  "assigned",
  "pending_trader_confirmation",
  "completed",
  "cancelled",
  "failed",
  "dispute",
  "requires_attention"
]
const openStatuses: ReadonlyArray<OrderStatus> = ["assigned", "pending_trader_confirmation"]
const heldForPeople: ReadonlyArray<OrderStatus> = ["dispute", "requires_attention"]
const staff: ReadonlyArray<ModelActor> = ["support", "admin"]

export const isOpen = (status: OrderStatus) => openStatuses.includes(status)

/**
 * Whether `actor` may move an order from `from` to `to`, and what it does to the money. A move that
 * is allowed but lacks its receipt is a ValidationError; every other refusal is InvalidTransition.
 */
export const decideMove = (
  from: OrderStatus,
  to: OrderStatus,
  actor: ModelActor,
  direction: Direction,
  hasReceipt: boolean,
  expired: boolean
): MoveDecision => {
  const refuse: MoveDecision = { ok: false, error: "InvalidTransition" }
  const needsReceipt = (needed: boolean, ledger: LedgerEffect): MoveDecision =>
    needed && !hasReceipt ? { ok: false, error: "ValidationError" } : { ok: true, ledger }
  switch (to) {
    case "pending_trader_confirmation":
      // Only a PayIn's customer pays; they say so with the bank's receipt.
      return from === "assigned" && direction === "payin" && (actor === "customer" || actor === "merchant")
        ? needsReceipt(true, "none")
        : refuse
    case "completed":
      if (isOpen(from) && actor === "trader") return needsReceipt(direction === "payout", "post")
      if (heldForPeople.includes(from) && staff.includes(actor)) return { ok: true, ledger: "post" }
      return refuse
    case "cancelled":
      if (isOpen(from) && ["trader", "merchant", "support", "admin"].includes(actor)) return { ok: true, ledger: "void" }
      if (heldForPeople.includes(from) && staff.includes(actor)) return { ok: true, ledger: "void" }
      return refuse
    case "dispute":
      return isOpen(from) && actor !== "customer" ? { ok: true, ledger: "none" } : refuse
    case "failed":
      return from === "assigned" && actor === "system" && expired ? { ok: true, ledger: "void" } : refuse
    case "requires_attention":
      return from === "pending_trader_confirmation" && actor === "system" && expired ? { ok: true, ledger: "none" } : refuse
    case "assigned":
      return refuse
  }
}

// ---------------------------------------------------------------------------------------------
// The model's state

export interface AccountState {
  balance: bigint
  frozen: bigint
}

export type ModelLedgerState = "held" | "posted" | "voided"

export interface ModelOrder {
  readonly orderId: number
  readonly incomingOrderId: number
  readonly direction: Direction
  readonly storeIndex: number
  readonly traderIndex: number
  readonly amounts: Amounts
  status: OrderStatus
  ledger: ModelLedgerState
  expired: boolean
}

export interface AccountRefModel {
  readonly kind: "store" | "trader"
  readonly index: number
}

export class LedgerModel {
  readonly stores: Array<AccountState>
  readonly traders: Array<AccountState>
  platform = 0n
  /** Deposits minus withdrawals: what the outside world put in. */
  externalNet = 0n
  readonly orders: Array<ModelOrder> = []

  constructor(storeCount: number, traderCount: number) {
    this.stores = Array.from({ length: storeCount }, () => ({ balance: 0n, frozen: 0n }))
    this.traders = Array.from({ length: traderCount }, () => ({ balance: 0n, frozen: 0n }))
  }

  account(ref: AccountRefModel): AccountState {
    const account = ref.kind === "store" ? this.stores[ref.index] : this.traders[ref.index]
    if (account === undefined) throw new Error(`model: no ${ref.kind} ${ref.index}`)
    return account
  }

  available(ref: AccountRefModel): bigint {
    const account = this.account(ref)
    return account.balance - account.frozen
  }

  deposit(ref: AccountRefModel, amount: bigint): void {
    this.account(ref).balance += amount
    this.externalNet += amount
  }

  /** False (and nothing changes) when the account's available balance is short. */
  withdraw(ref: AccountRefModel, amount: bigint): boolean {
    if (this.available(ref) < amount) return false
    this.account(ref).balance -= amount
    this.externalNet -= amount
    return true
  }

  holdAccountOf(direction: Direction, storeIndex: number, traderIndex: number): AccountRefModel {
    return direction === "payin" ? { kind: "trader", index: traderIndex } : { kind: "store", index: storeIndex }
  }

  canHold(direction: Direction, storeIndex: number, traderIndex: number, amounts: Amounts): boolean {
    return this.available(this.holdAccountOf(direction, storeIndex, traderIndex)) >= holdAmountOf(direction, amounts)
  }

  /** A new assigned order with its hold (the caller checked `canHold`). */
  addHeldOrder(order: Omit<ModelOrder, "status" | "ledger" | "expired">): ModelOrder {
    if (!this.canHold(order.direction, order.storeIndex, order.traderIndex, order.amounts)) {
      throw new Error("model: hold placed without cover")
    }
    this.account(this.holdAccountOf(order.direction, order.storeIndex, order.traderIndex)).frozen += holdAmountOf(
      order.direction,
      order.amounts
    )
    const added: ModelOrder = { ...order, status: "assigned", ledger: "held", expired: false }
    this.orders.push(added)
    return added
  }

  /** Applies an allowed move and its ledger effect. */
  applyMove(order: ModelOrder, to: OrderStatus, ledger: LedgerEffect): void {
    const hold = holdAmountOf(order.direction, order.amounts)
    const holdAccount = this.account(this.holdAccountOf(order.direction, order.storeIndex, order.traderIndex))
    if (ledger !== "none" && order.ledger !== "held") throw new Error(`model: ${ledger} of a ${order.ledger} order`)
    if (ledger === "void") {
      holdAccount.frozen -= hold
      order.ledger = "voided"
    }
    if (ledger === "post") {
      const { amountCrypto: a, storeCommission: s, traderReward: t } = order.amounts
      const store = this.stores[order.storeIndex]!
      const trader = this.traders[order.traderIndex]!
      holdAccount.frozen -= hold
      if (order.direction === "payin") {
        store.balance += a - s
        trader.balance -= a - t
      } else {
        store.balance -= a + s
        trader.balance += a + t
      }
      this.platform += s - t
      order.ledger = "posted"
    }
    order.status = to
  }

  /** Invariants the model itself must keep; a failure here is a bug in the model or the test. */
  selfCheck(): void {
    const accounts = [...this.stores, ...this.traders]
    for (const account of accounts) {
      if (account.frozen < 0n || account.balance < account.frozen) throw new Error("model: balance below its holds")
    }
    const total = accounts.reduce((sum, account) => sum + account.balance, this.platform)
    if (total !== this.externalNet) throw new Error("model: balances do not add up to the external net")
  }
}
