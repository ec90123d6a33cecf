import { HttpApiSchema } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Data, Effect, Either, Option, Schema } from "effect"
import { randomBytes } from "node:crypto"
import {
  Forbidden,
  InvalidTransition,
  OrderNotFound,
  PayloadTooLarge,
  ServiceUnavailable,
  ValidationError
} from "../domain/Errors.js"
import { DecimalFromNumeric, formatCrypto, formatFiat, formatRate } from "../domain/Money.js"
import {
  type Actor,
  decideTransition,
  openStatuses,
  refusalToError,
  type TransitionRule
} from "../domain/OrderStateMachine.js"
import type { StorePrincipal, UserPrincipal } from "../domain/Principal.js"
import { Direction, IncomingOrderStatus, OrderStatus } from "../domain/Status.js"
import { AppConfig } from "../layers/Config.js"
import { ObjectStore } from "../layers/ObjectStore.js"
import { atomic, dieOnInfrastructure } from "./Atomic.js"
import { AuditLogger } from "./AuditLogger.js"
import { BalanceManager } from "./BalanceManager.js"
import { CallbackOutbox } from "./CallbackOutbox.js"
import { FraudDetector, type FraudResult } from "./FraudDetector.js"

/**
 * OrderStatusManager (SPEC §5.8): moves assigned orders through the state machine of
 * `domain/OrderStateMachine.ts`. Every move is one transaction that locks the order row (and checks
 * ownership in the same statement), decides by the table, updates the order, posts or voids the
 * hold, and writes the audit row and the merchant callback — all or nothing. A concurrent second
 * move waits for the lock and then finds the order already moved: 409 `InvalidTransition`.
 *
 * `incoming_orders.status` describes intake, not settlement: it stays `assigned` while the order
 * lives in `order_history` (whose status the merchant view shows as `order.status`), and becomes
 * `cancelled` when the order is cancelled, so a merchant reading the top-level status never sees a
 * cancelled order as live. A timed-out order (`failed`) deliberately keeps `assigned`: incoming
 * `failed` is the admins' retryable dead-letter set, and an order that already has an
 * `order_history` row must not be fed to the processor again.
 */

// ---------------------------------------------------------------------------------------------
// Errors and limits

/** A receipt whose bytes are not PNG, JPEG or PDF, or whose declared type disagrees with its bytes. */
export class UnsupportedReceiptType extends Schema.TaggedError<UnsupportedReceiptType>()(
  "UnsupportedReceiptType",
  { message: Schema.String, field: Schema.String },
  HttpApiSchema.annotations({ status: 415 })
) {}

export const reasonLengthMax = 500
export const listLimitMax = 100
export const listLimitDefault = 50
export const listOffsetMax = 100_000

// ---------------------------------------------------------------------------------------------
// Who acts

export type LifecycleActor = Data.TaggedEnum<{
  /** A logged-in trader; acts only on orders of their own requisites. */
  Trader: { readonly user: UserPrincipal; readonly traderId: number }
  /** A store's server (merchant API) or its customer (payment page); the order id is the incoming order's. */
  Store: { readonly store: StorePrincipal; readonly role: "merchant" | "customer" }
  /** Admin or support: any order. */
  Staff: { readonly user: UserPrincipal }
  /** Workers (timeouts) and the fraud hold. */
  System: {}
}>
export const LifecycleActor = Data.taggedEnum<LifecycleActor>()

const actorRole = (actor: LifecycleActor): Actor =>
  LifecycleActor.$match(actor, {
    Trader: () => "trader" as const,
    Store: ({ role }) => role,
    Staff: ({ user }) => (user.role === "admin" ? "admin" as const : "support" as const),
    System: () => "system" as const
  })

const auditIdentity = (actor: LifecycleActor) =>
  LifecycleActor.$match(actor, {
    Trader: ({ user }) => ({ userId: user.userId as number | null, userRole: "trader" }),
    Store: ({ role }) => ({ userId: null, userRole: role }),
    Staff: ({ user }) => ({ userId: user.userId as number | null, userRole: user.role }),
    System: () => ({ userId: null, userRole: "system" })
  })

export interface RequestContext {
  readonly ipAddress?: string | null | undefined
}

// ---------------------------------------------------------------------------------------------
// Receipts

/** A proof document as uploaded: the bytes, the part's declared content type, the client's file name. */
export interface Receipt {
  readonly bytes: Uint8Array
  readonly declaredType: string
  readonly fileName?: string | undefined
}

interface ReceiptFormat {
  readonly contentType: string
  readonly extension: string
  readonly magic: ReadonlyArray<number>
}

const receiptFormats: ReadonlyArray<ReceiptFormat> = [
  { contentType: "image/png", extension: "png", magic: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] },
  { contentType: "image/jpeg", extension: "jpg", magic: [0xff, 0xd8, 0xff] },
  { contentType: "application/pdf", extension: "pdf", magic: [0x25, 0x50, 0x44, 0x46, 0x2d] }
]

// Clients that do not know the type say so; anything else must agree with the bytes.
const genericDeclaredTypes = ["", "application/octet-stream", "binary/octet-stream"]
const declaredTypeAliases: Record<string, string> = { "image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg" }

const normalizeDeclaredType = (declared: string) => {
  const bare = declared.split(";", 1)[0]!.trim().toLowerCase()
  return declaredTypeAliases[bare] ?? bare
}

/** The format the bytes are, by their signature; the declared type and file name are not trusted. */
export const sniffReceipt = (bytes: Uint8Array): ReceiptFormat | undefined =>
  receiptFormats.find((format) =>
    bytes.length >= format.magic.length && format.magic.every((byte, index) => bytes[index] === byte)
  )

/** Checks a receipt before anything is stored: not empty, within the size limit, PNG/JPEG/PDF by content. */
export const validateReceipt = (receipt: Receipt, maxReceiptBytes: number) =>
  Effect.gen(function*() {
    if (receipt.bytes.length === 0) {
      return yield* new ValidationError({ field: "receipt", message: "receipt: the file is empty" })
    }
    if (receipt.bytes.length > maxReceiptBytes) {
      return yield* new PayloadTooLarge({ message: `receipt: the file is larger than ${maxReceiptBytes} bytes` })
    }
    const format = sniffReceipt(receipt.bytes)
    if (format === undefined) {
      return yield* new UnsupportedReceiptType({
        field: "receipt",
        message: "receipt: the file is not a PNG, JPEG or PDF document"
      })
    }
    const declared = normalizeDeclaredType(receipt.declaredType)
    if (!genericDeclaredTypes.includes(declared) && declared !== format.contentType) {
      return yield* new UnsupportedReceiptType({
        field: "receipt",
        message: `receipt: declared as ${declared.slice(0, 100)} but the content is ${format.contentType}`
      })
    }
    return format
  })

interface StoredReceipt {
  readonly key: string
  readonly contentType: string
  readonly bytes: number
}

// ---------------------------------------------------------------------------------------------
// Rows and views

const LockedOrder = Schema.Struct({
  id: Schema.Number,
  incomingOrderId: Schema.Number,
  storeId: Schema.Number,
  traderId: Schema.Number,
  direction: Direction,
  status: OrderStatus,
  expired: Schema.Boolean
})
type LockedOrder = typeof LockedOrder.Type
const decodeLocked = Schema.decodeUnknown(Schema.Array(LockedOrder))

const PayoutDestinationRow = Schema.Struct({ details: Schema.String, holderName: Schema.String, bankCode: Schema.String })

const OrderItemRow = Schema.Struct({
  id: Schema.Number,
  incomingOrderId: Schema.Number,
  status: OrderStatus,
  direction: Direction,
  amountFiat: DecimalFromNumeric,
  amountCrypto: DecimalFromNumeric,
  exchangeRate: DecimalFromNumeric,
  requisiteId: Schema.Number,
  payoutDestination: Schema.NullOr(PayoutDestinationRow),
  expiresAt: Schema.DateFromSelf
})
type OrderItemRow = typeof OrderItemRow.Type
const decodeItems = Schema.decodeUnknown(Schema.Array(OrderItemRow))

/** The trader's view of an order (SPEC §6.1 `GET /api/trader/orders` items). */
export const orderItemView = (row: OrderItemRow) => ({
  id: row.id,
  incomingOrderId: row.incomingOrderId,
  status: row.status,
  direction: row.direction,
  amountFiat: formatFiat(row.amountFiat),
  amountCrypto: formatCrypto(row.amountCrypto),
  exchangeRate: formatRate(row.exchangeRate),
  requisiteId: row.requisiteId,
  payoutDestination: row.payoutDestination,
  expiresAt: row.expiresAt.toISOString()
})
export type OrderItem = ReturnType<typeof orderItemView>

export interface TransitionOutcome {
  readonly order: OrderItem
  readonly from: OrderStatus
  /** What happened; differs from what was asked when the fraud check held a confirmation for review. */
  readonly to: OrderStatus
  readonly requested: OrderStatus
  readonly fraud: FraudResult | null
}

export interface TraderOrderQuery {
  readonly status?: OrderStatus | undefined
  readonly limit?: number | undefined
  readonly offset?: number | undefined
}

/** A move as its caller asked for it; the table decides whether it happens. */
interface MoveRequest {
  readonly to: OrderStatus
  readonly reason: string | null
  readonly receipt: StoredReceipt | undefined
  readonly receiptSide: "client" | "trader"
  /** Confirmations ask the FraudDetector; a non-ALLOW answer turns the move into a dispute. */
  readonly fraudCheck: boolean
}

const validateReason = (reason: string) => {
  const trimmed = reason.trim()
  if (trimmed.length === 0) return Effect.fail(new ValidationError({ field: "reason", message: "reason: must not be empty" }))
  if (reason.length > reasonLengthMax) {
    return Effect.fail(new ValidationError({ field: "reason", message: `reason: at most ${reasonLengthMax} characters` }))
  }
  return Effect.succeed(trimmed)
}

const notFound = (id: number) => new OrderNotFound({ message: `order ${id} not found` })

// ---------------------------------------------------------------------------------------------

export class OrderStatusManager extends Effect.Service<OrderStatusManager>()("OrderStatusManager", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AppConfig
    const objects = yield* ObjectStore
    const balances = yield* BalanceManager
    const audit = yield* AuditLogger
    const outbox = yield* CallbackOutbox
    const fraud = yield* FraudDetector

    // ---- reading and locking, with ownership in the same statement --------------------------

    /**
     * The caller's orders only: a trader's through their requisites, a store's by its incoming order
     * id, staff and the system any. Someone else's order is indistinguishable from a missing one.
     */
    const ownedOrder = (actor: LifecycleActor, id: number, lock: boolean, to: OrderStatus) => {
      const columns = sql`o.id, o.incoming_order_id, o.store_id, o.trader_id, o.direction, o.status,
        o.expires_at <= now() AS expired`
      const forUpdate = lock ? sql`FOR UPDATE OF o` : sql``
      const statement = LifecycleActor.$match(actor, {
        Trader: ({ traderId }) =>
          sql`SELECT ${columns} FROM order_history o JOIN requisites r ON r.id = o.requisite_id
              WHERE o.id = ${id} AND o.trader_id = ${traderId} AND r.trader_id = ${traderId} ${forUpdate}`,
        Store: ({ store }) =>
          sql`SELECT ${columns} FROM order_history o
              WHERE o.incoming_order_id = ${id} AND o.store_id = ${store.storeId} ${forUpdate}`,
        Staff: () => sql`SELECT ${columns} FROM order_history o WHERE o.id = ${id} ${forUpdate}`,
        System: () => sql`SELECT ${columns} FROM order_history o WHERE o.id = ${id} ${forUpdate}`
      })
      return statement.pipe(
        Effect.flatMap(decodeLocked),
        Effect.flatMap((rows) => rows[0] === undefined ? missingOrder(actor, id, to) : Effect.succeed(rows[0]))
      )
    }

    /** A store's own order that was never assigned cannot move yet (409); anything else is a 404. */
    const missingOrder = (actor: LifecycleActor, id: number, to: OrderStatus) =>
      Effect.gen(function*() {
        if (actor._tag !== "Store") return yield* notFound(id)
        const rows = yield* sql<{ status: string }>`SELECT status FROM incoming_orders
          WHERE id = ${id} AND store_id = ${actor.store.storeId}`
        const incoming = rows[0]
        if (incoming === undefined) return yield* notFound(id)
        const status = yield* Schema.decodeUnknown(IncomingOrderStatus)(incoming.status)
        return yield* new InvalidTransition({
          from: status,
          to,
          message: `the order is ${status} and has no assigned requisite yet`
        })
      })

    const decide = (order: LockedOrder, to: OrderStatus, actor: LifecycleActor, hasReceipt: boolean) =>
      Either.match(decideTransition(order.status, to, actorRole(actor), order.direction, hasReceipt, order.expired), {
        onLeft: (refusal) => Effect.fail(refusalToError(refusal)),
        onRight: (rule) => Effect.succeed(rule)
      })

    const readItem = (orderId: number) =>
      sql`SELECT o.id, o.incoming_order_id, o.status, o.direction, o.amount_fiat, o.amount_crypto, o.exchange_rate,
                 o.requisite_id, i.payout_destination, o.expires_at
          FROM order_history o JOIN incoming_orders i ON i.id = o.incoming_order_id
          WHERE o.id = ${orderId}`.pipe(
        Effect.flatMap(decodeItems),
        Effect.map((rows) => orderItemView(rows[0]!))
      )

    // ---- receipts ------------------------------------------------------------------------------

    /**
     * Stored before the transaction so the order's lock is never held while S3 answers. If the
     * transaction then rolls back (e.g. a concurrent confirmation won), the object stays as an
     * orphan: harmless, unreferenced, and cheaper than holding row locks across a network upload.
     */
    const storeReceipt = (orderId: number, side: "client" | "trader", receipt: Receipt) =>
      Effect.gen(function*() {
        const format = yield* validateReceipt(receipt, config.maxReceiptBytes)
        const key = `receipts/${orderId}/${side}-${randomBytes(12).toString("hex")}.${format.extension}`
        yield* objects.put(key, receipt.bytes, format.contentType).pipe(
          Effect.catchTag("ObjectStoreError", (error) =>
            Effect.zipRight(
              Effect.logError("receipt upload failed", error.message),
              Effect.fail(new ServiceUnavailable({ message: "receipt storage is unavailable; try again later" }))
            ))
        )
        return { key, contentType: format.contentType, bytes: receipt.bytes.length } satisfies StoredReceipt
      })

    // ---- the move --------------------------------------------------------------------------------

    const applyLedger = (rule: TransitionRule, orderId: number) => {
      switch (rule.ledger) {
        case "none":
          return Effect.void
        case "post":
          return Effect.asVoid(balances.post(orderId))
        case "void":
          return Effect.asVoid(balances.release(orderId))
      }
    }

    const fraudHold = (order: LockedOrder, actor: LifecycleActor, request: MoveRequest) =>
      Effect.gen(function*() {
        if (!request.fraudCheck) return Option.none<FraudResult>()
        const result = yield* fraud.checkOrderConfirmation({
          orderId: order.id,
          incomingOrderId: order.incomingOrderId,
          actorRole: actorRole(actor),
          receiptPresent: request.receipt !== undefined
        })
        return result.decision === "ALLOW" ? Option.none<FraudResult>() : Option.some(result)
      })

    /** The move itself, on an order the caller locked in the current transaction. */
    const applyMove = (order: LockedOrder, actor: LifecycleActor, request: MoveRequest, context: RequestContext) =>
      Effect.gen(function*() {
        const requestedRule = yield* decide(order, request.to, actor, request.receipt !== undefined)
        const held = yield* fraudHold(order, actor, request)
        // A confirmation the fraud check holds becomes a dispute: the hold stays, a person decides.
        const rule = Option.isSome(held)
          ? yield* Effect.orDie(decide(order, "dispute", LifecycleActor.System(), request.receipt !== undefined))
          : requestedRule
        const fraudNote = Option.map(held, (result) =>
          `fraud check ${result.decision}${result.rule === null ? "" : ` (${result.rule})`}: ${result.reason}`)
        const statusReason = Option.getOrElse(fraudNote, () => request.reason)
        const clientKey = request.receiptSide === "client" ? request.receipt?.key ?? null : null
        const traderKey = request.receiptSide === "trader" ? request.receipt?.key ?? null : null
        yield* sql`UPDATE order_history SET
            status = ${rule.to},
            status_reason = COALESCE(${statusReason}, status_reason),
            completed_at = CASE WHEN ${rule.to} = 'completed' THEN now() ELSE completed_at END,
            client_proof_key = COALESCE(${clientKey}, client_proof_key),
            trader_proof_key = COALESCE(${traderKey}, trader_proof_key),
            updated_at = now()
          WHERE id = ${order.id}`
        // Posting and voiding cannot be refused once the table allowed the move; if they are, an invariant broke.
        yield* Effect.orDie(applyLedger(rule, order.id))
        if (rule.to === "cancelled") {
          yield* sql`UPDATE incoming_orders SET status = 'cancelled', updated_at = now() WHERE id = ${order.incomingOrderId}`
        }
        yield* audit.logAction({
          ...auditIdentity(actor),
          action: `order.${rule.to}`,
          targetEntity: "order",
          targetId: order.id,
          ipAddress: context.ipAddress ?? null,
          details: {
            incomingOrderId: order.incomingOrderId,
            storeId: order.storeId,
            traderId: order.traderId,
            from: order.status,
            to: rule.to,
            requested: request.to,
            actor: actorRole(actor),
            reason: request.reason,
            ledger: rule.ledger,
            receipt: request.receipt === undefined ? null : { side: request.receiptSide, ...request.receipt },
            fraud: Option.getOrNull(held)
          }
        })
        yield* outbox.enqueueOrderEvent({ incomingOrderId: order.incomingOrderId, event: `order.${rule.to}` })
        if (rule.to === "requires_attention" || Option.isSome(held)) {
          // The operators' notification: this order now waits for a person.
          yield* Effect.logWarning(`ALERT: order ${order.id} needs a person (${rule.to})`).pipe(
            Effect.annotateLogs({ alert: "order_needs_attention", orderId: order.id, reason: statusReason ?? "" })
          )
        }
        return {
          order: yield* readItem(order.id),
          from: order.status,
          to: rule.to,
          requested: request.to,
          fraud: Option.getOrNull(held)
        } satisfies TransitionOutcome
      })

    const move = (actor: LifecycleActor, id: number, request: MoveRequest, context: RequestContext) =>
      atomic(
        `order.${request.to}`,
        Effect.flatMap(ownedOrder(actor, id, true, request.to), (order) => applyMove(order, actor, request, context))
      ).pipe(Effect.provideService(SqlClient.SqlClient, sql))

    /**
     * A move that may carry a receipt: ownership and state are checked first without a lock (a
     * foreign order or a finished one never reaches the object store), then the receipt is stored,
     * then the move runs in its transaction, where both are checked again under the lock.
     */
    const moveWithReceipt = (
      actor: LifecycleActor,
      id: number,
      to: OrderStatus,
      receipt: Receipt | undefined,
      side: "client" | "trader",
      context: RequestContext
    ) =>
      Effect.gen(function*() {
        const order = yield* ownedOrder(actor, id, false, to)
        yield* decide(order, to, actor, receipt !== undefined)
        const stored = receipt === undefined ? undefined : yield* storeReceipt(order.id, side, receipt)
        return yield* move(actor, id, { to, reason: null, receipt: stored, receiptSide: side, fraudCheck: true }, context)
      })

    // ---- the API -------------------------------------------------------------------------------

    /** The customer says they paid a PayIn (SPEC §5.8); `incomingOrderId` is the merchant API's order id. */
    const confirmByClient = Effect.fn("OrderStatusManager.confirmByClient")(function*(
      store: StorePrincipal,
      incomingOrderId: number,
      receipt: Receipt | undefined,
      context: RequestContext & { readonly actor?: "merchant" | "customer" | undefined } = {}
    ) {
      const actor = LifecycleActor.Store({ store, role: context.actor ?? "merchant" })
      return yield* moveWithReceipt(actor, incomingOrderId, "pending_trader_confirmation", receipt, "client", context)
    }, dieOnInfrastructure)

    /** The trader confirms: completed and posted, or a dispute if the fraud check holds it. */
    const confirmByTrader = Effect.fn("OrderStatusManager.confirmByTrader")(function*(
      trader: { readonly user: UserPrincipal; readonly traderId: number },
      orderId: number,
      receipt: Receipt | undefined,
      context: RequestContext = {}
    ) {
      return yield* moveWithReceipt(LifecycleActor.Trader(trader), orderId, "completed", receipt, "trader", context)
    }, dieOnInfrastructure)

    const moveWithReason = (to: "cancelled" | "dispute") =>
      Effect.fn(`OrderStatusManager.${to === "cancelled" ? "cancel" : "dispute"}`)(function*(
        actor: LifecycleActor,
        orderId: number,
        reason: string,
        context: RequestContext = {}
      ) {
        const checkedReason = yield* validateReason(reason)
        return yield* move(
          actor,
          orderId,
          { to, reason: checkedReason, receipt: undefined, receiptSide: "trader", fraudCheck: false },
          context
        )
      }, dieOnInfrastructure)

    /** Admin/support manual move with a reason (SPEC §6 `POST /api/admin/orders/{id}/status`). */
    const adminTransition = Effect.fn("OrderStatusManager.adminTransition")(function*(
      user: UserPrincipal,
      orderId: number,
      to: OrderStatus,
      reason: string,
      context: RequestContext = {}
    ) {
      if (user.role !== "admin" && user.role !== "support") {
        return yield* new Forbidden({ message: "this action needs the role admin or support" })
      }
      const checkedReason = yield* validateReason(reason)
      return yield* move(
        LifecycleActor.Staff({ user }),
        orderId,
        { to, reason: checkedReason, receipt: undefined, receiptSide: "trader", fraudCheck: false },
        context
      )
    }, dieOnInfrastructure)

    /**
     * The timeout worker's move: an open order past `expires_at` fails (assigned; hold voided) or
     * waits for a person (pending_trader_confirmation; hold kept). Anything else is left alone.
     */
    const expire = Effect.fn("OrderStatusManager.expire")(function*(orderId: number) {
      const system = LifecycleActor.System()
      return yield* atomic(
        "order.expire",
        Effect.gen(function*() {
          const order = yield* ownedOrder(system, orderId, true, "failed")
          if (!openStatuses.includes(order.status) || !order.expired) return "not-expired" as const
          const to = order.status === "assigned" ? "failed" as const : "requires_attention" as const
          const request: MoveRequest = { to, reason: "expired", receipt: undefined, receiptSide: "trader", fraudCheck: false }
          // The table allows exactly these moves to the system once expired; a refusal here is a bug.
          yield* applyMove(order, system, request, {}).pipe(
            Effect.catchTags({ InvalidTransition: Effect.die, ValidationError: Effect.die })
          )
          return to
        })
      ).pipe(Effect.provideService(SqlClient.SqlClient, sql))
    }, dieOnInfrastructure)

    const listTraderOrders = Effect.fn("OrderStatusManager.listTraderOrders")(function*(
      traderId: number,
      query: TraderOrderQuery = {}
    ) {
      const limit = Math.min(Math.max(1, Math.trunc(query.limit ?? listLimitDefault)), listLimitMax)
      const offset = Math.min(Math.max(0, Math.trunc(query.offset ?? 0)), listOffsetMax)
      const statusFilter = query.status === undefined ? sql`` : sql`AND o.status = ${query.status}`
      const rows = yield* sql`SELECT o.id, o.incoming_order_id, o.status, o.direction, o.amount_fiat, o.amount_crypto,
                 o.exchange_rate, o.requisite_id, i.payout_destination, o.expires_at
          FROM order_history o
          JOIN requisites r ON r.id = o.requisite_id
          JOIN incoming_orders i ON i.id = o.incoming_order_id
          WHERE o.trader_id = ${traderId} AND r.trader_id = ${traderId} ${statusFilter}
          ORDER BY o.created_at DESC, o.id DESC
          LIMIT ${limit} OFFSET ${offset}`.pipe(Effect.flatMap(decodeItems))
      const [count] = yield* sql<{ total: number }>`SELECT count(*)::int AS total
          FROM order_history o JOIN requisites r ON r.id = o.requisite_id
          WHERE o.trader_id = ${traderId} AND r.trader_id = ${traderId} ${statusFilter}`
      return { items: rows.map(orderItemView), total: count?.total ?? 0 }
    }, dieOnInfrastructure)

    return {
      confirmByClient,
      confirmByTrader,
      cancel: moveWithReason("cancelled"),
      dispute: moveWithReason("dispute"),
      adminTransition,
      expire,
      listTraderOrders
    } as const
  }),
  dependencies: [BalanceManager.Default, AuditLogger.Default, CallbackOutbox.Default, FraudDetector.Default]
}) {}
