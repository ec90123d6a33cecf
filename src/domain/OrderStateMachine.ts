import { Data, Either } from "effect"
import { InvalidTransition, ValidationError } from "./Errors.js"
import type { Direction, OrderStatus } from "./Status.js"

/**
 * The order state machine (SPEC §5.8) as data: every allowed move is one row of `transitionTable`,
 * and `decideTransition` is the only reader. Services never compare statuses themselves, so a
 * reviewer checks the rules here and nowhere else.
 */

export type Actor = "trader" | "merchant" | "customer" | "support" | "admin" | "system"
export const actors: ReadonlyArray<Actor> = ["trader", "merchant", "customer", "support", "admin", "system"]

/** What the move does to the order's money (BalanceManager): nothing (the hold stays), post, or void. */
export type LedgerEffect = "none" | "post" | "void"

export interface TransitionRule {
  readonly from: OrderStatus
  readonly to: OrderStatus
  readonly actors: ReadonlyArray<Actor>
  readonly ledger: LedgerEffect
  /** Only for these directions (default: both). A PayOut has no customer payment to confirm. */
  readonly directions?: ReadonlyArray<Direction>
  /** A proof document must come with the move: always, or only for PayOut orders. */
  readonly requiresReceipt?: "always" | "payout"
  /** Only once `expires_at` has passed (the timeout worker's moves). */
  readonly requiresExpiry?: true
}

export const orderStatuses: ReadonlyArray<OrderStatus> = [
  "assigned",
  "pending_trader_confirmation",
  "completed",
  "cancelled",
  "failed",
  "dispute",
  "requires_attention"
]

/** Terminal states: no row leaves them (the admin resolutions leave `dispute`/`requires_attention`, which are not terminal). */
export const terminalStatuses: ReadonlyArray<OrderStatus> = ["completed", "cancelled", "failed"]
export const isTerminal = (status: OrderStatus): boolean => terminalStatuses.includes(status)

/** Statuses the trader or the customer can still act on, and which time out. */
export const openStatuses: ReadonlyArray<OrderStatus> = ["assigned", "pending_trader_confirmation"]

const open = openStatuses
const cancellers: ReadonlyArray<Actor> = ["trader", "merchant", "support", "admin"]
// "system" raises a dispute when the fraud check holds a confirmation for review.
const disputers: ReadonlyArray<Actor> = ["trader", "merchant", "support", "admin", "system"]
const resolvers: ReadonlyArray<Actor> = ["support", "admin"]

export const transitionTable: ReadonlyArray<TransitionRule> = [
  // The customer (through the merchant API or the payment page) says they paid, with the bank's receipt.
  {
    from: "assigned",
    to: "pending_trader_confirmation",
    actors: ["customer", "merchant"],
    ledger: "none",
    directions: ["payin"],
    requiresReceipt: "always"
  },
  // The trader saw the money (PayIn) or sent it (PayOut, proven by their receipt): settle.
  ...open.map((from): TransitionRule => ({
    from,
    to: "completed",
    actors: ["trader"],
    ledger: "post",
    requiresReceipt: "payout"
  })),
  ...open.map((from): TransitionRule => ({ from, to: "cancelled", actors: cancellers, ledger: "void" })),
  // A dispute keeps the hold: whoever resolves it decides where the money goes.
  ...open.map((from): TransitionRule => ({ from, to: "dispute", actors: disputers, ledger: "none" })),
  // Only people resolve what the process could not.
  ...(["dispute", "requires_attention"] as const).flatMap((from): ReadonlyArray<TransitionRule> => [
    { from, to: "completed", actors: resolvers, ledger: "post" },
    { from, to: "cancelled", actors: resolvers, ledger: "void" }
  ]),
  // Timeouts: nobody paid → fail and release; the customer says they paid but the trader is silent → a person looks.
  { from: "assigned", to: "failed", actors: ["system"], ledger: "void", requiresExpiry: true },
  { from: "pending_trader_confirmation", to: "requires_attention", actors: ["system"], ledger: "none", requiresExpiry: true }
]

/** Why a move was refused; the service turns it into the HTTP-facing error with `refusalToError`. */
export type TransitionRefusal = Data.TaggedEnum<{
  /** No row from → to at all (includes every move out of a terminal state). */
  NoSuchTransition: { readonly from: OrderStatus; readonly to: OrderStatus }
  /** The move exists but not for this kind of order. */
  WrongDirection: { readonly from: OrderStatus; readonly to: OrderStatus; readonly direction: Direction }
  /** The move exists but is not this actor's to make. */
  ActorNotAllowed: { readonly from: OrderStatus; readonly to: OrderStatus; readonly actor: Actor }
  ReceiptRequired: { readonly from: OrderStatus; readonly to: OrderStatus }
  NotExpired: { readonly from: OrderStatus; readonly to: OrderStatus }
}>
export const TransitionRefusal = Data.taggedEnum<TransitionRefusal>()

export const findRule = (from: OrderStatus, to: OrderStatus): TransitionRule | undefined =>
  transitionTable.find((rule) => rule.from === from && rule.to === to)

/**
 * Decides one move. Pure: the caller has locked the order and passes what it read. The checks go
 * from the most to the least fundamental, so a move out of a terminal state is always
 * `NoSuchTransition`, whoever asks and whatever they send.
 */
export const decideTransition = (
  from: OrderStatus,
  to: OrderStatus,
  actor: Actor,
  direction: Direction,
  hasReceipt: boolean,
  expired: boolean = false
): Either.Either<TransitionRule, TransitionRefusal> => {
  const rule = findRule(from, to)
  if (rule === undefined) return Either.left(TransitionRefusal.NoSuchTransition({ from, to }))
  if (rule.directions !== undefined && !rule.directions.includes(direction)) {
    return Either.left(TransitionRefusal.WrongDirection({ from, to, direction }))
  }
  if (!rule.actors.includes(actor)) return Either.left(TransitionRefusal.ActorNotAllowed({ from, to, actor }))
  if (rule.requiresExpiry === true && !expired) return Either.left(TransitionRefusal.NotExpired({ from, to }))
  const receiptNeeded = rule.requiresReceipt === "always" || (rule.requiresReceipt === "payout" && direction === "payout")
  if (receiptNeeded && !hasReceipt) return Either.left(TransitionRefusal.ReceiptRequired({ from, to }))
  return Either.right(rule)
}

/** The error a client sees: 409 for a move that cannot happen now (for this caller), 400 for a missing receipt. */
export const refusalToError = (refusal: TransitionRefusal): InvalidTransition | ValidationError =>
  TransitionRefusal.$match(refusal, {
    NoSuchTransition: ({ from, to }) =>
      new InvalidTransition({
        from,
        to,
        message: isTerminal(from)
          ? `the order is already ${from}; it cannot become ${to}`
          : `an order in status ${from} cannot become ${to}`
      }),
    WrongDirection: ({ direction, from, to }) =>
      new InvalidTransition({ from, to, message: `a ${direction} order cannot go from ${from} to ${to}` }),
    // The order's state, not the caller's role, is what stands in the way (a trader confirming a
    // disputed order): 409, like any other move the order cannot make now. Forbidden (403) is for a
    // role that may not use an operation at all, which the services check before deciding.
    ActorNotAllowed: ({ actor, from, to }) =>
      new InvalidTransition({
        from,
        to,
        message: `an order in status ${from} can become ${to} only by ${(findRule(from, to)?.actors ?? []).join(", ")}, not by a ${actor}`
      }),
    ReceiptRequired: ({ from, to }) =>
      new ValidationError({ field: "receipt", message: `receipt: a receipt file is required to move the order from ${from} to ${to}` }),
    NotExpired: ({ from, to }) =>
      new InvalidTransition({ from, to, message: `the order has not expired; it cannot become ${to} yet` })
  })
