import { SqlClient } from "@effect/sql"
import { BigDecimal, Effect, Option, Schema } from "effect"
import { createHash } from "node:crypto"
import { Conflict, DuplicateOrder, NotFound, ValidationError } from "../domain/Errors.js"
import { DecimalFromNumeric, formatCrypto, formatFiat, formatRate } from "../domain/Money.js"
import type { StorePrincipal } from "../domain/Principal.js"
import { Direction, IncomingOrderStatus, OrderStatus } from "../domain/Status.js"
import { isPrivateHost } from "../domain/UrlSafety.js"
import { AppConfig } from "../layers/Config.js"
import { OrderWakeup } from "../layers/OrderWakeup.js"
import { atomic, dieOnInfrastructure, isUniqueViolation } from "./Atomic.js"
import { FraudDetector } from "./FraudDetector.js"

export interface NewOrder {
  readonly merchantOrderId: string
  readonly direction: "payin" | "payout"
  readonly amount: BigDecimal.BigDecimal
  readonly currency: string
  readonly paymentMethod: string
  readonly bankCode?: string | undefined
  readonly customerId?: string | undefined
  readonly clientIp?: string | undefined
  readonly returnUrl?: string | undefined
  readonly callbackUrl?: string | undefined
  readonly payoutDestination?: { readonly details: string; readonly holderName: string; readonly bankCode: string } | undefined
}

const OrderViewRow = Schema.Struct({
  id: Schema.Number,
  merchantOrderId: Schema.String,
  direction: Direction,
  amount: DecimalFromNumeric,
  currency: Schema.String,
  status: IncomingOrderStatus,
  failureReason: Schema.NullOr(Schema.String),
  createdAt: Schema.DateFromSelf,
  requestHash: Schema.Uint8ArrayFromSelf,
  orderId: Schema.NullOr(Schema.Number),
  orderStatus: Schema.NullOr(OrderStatus),
  exchangeRate: Schema.NullOr(DecimalFromNumeric),
  amountCrypto: Schema.NullOr(DecimalFromNumeric),
  expiresAt: Schema.NullOr(Schema.DateFromSelf),
  requisiteBankCode: Schema.NullOr(Schema.String),
  requisitePaymentMethod: Schema.NullOr(Schema.String),
  requisiteDetails: Schema.NullOr(Schema.String),
  requisiteHolderName: Schema.NullOr(Schema.String)
})
type OrderViewRow = typeof OrderViewRow.Type
const decodeViewRows = Schema.decodeUnknown(Schema.Array(OrderViewRow))

export const merchantOrderView = (row: OrderViewRow) => ({
  id: row.id,
  merchantOrderId: row.merchantOrderId,
  direction: row.direction,
  amount: formatFiat(row.amount),
  currency: row.currency,
  status: row.status,
  failureReason: row.failureReason,
  createdAt: row.createdAt.toISOString(),
  order: row.orderId === null
    ? null
    : {
      id: row.orderId,
      status: row.orderStatus!,
      exchangeRate: formatRate(row.exchangeRate!),
      amountCrypto: formatCrypto(row.amountCrypto!),
      expiresAt: row.expiresAt!.toISOString(),
      // The customer sees where to pay only for PayIn; a PayOut's requisite is the trader's own business.
      requisite: row.direction === "payin" && row.requisiteDetails !== null
        ? {
          bankCode: row.requisiteBankCode!,
          paymentMethod: row.requisitePaymentMethod!,
          details: row.requisiteDetails,
          holderName: row.requisiteHolderName!
        }
        : null
    }
})
export type MerchantOrder = ReturnType<typeof merchantOrderView>

/** A stable digest of what the merchant asked for: key order and absent-vs-undefined do not matter. */
export const requestHashOf = (order: NewOrder) =>
  createHash("sha256").update(JSON.stringify({
    merchantOrderId: order.merchantOrderId,
    direction: order.direction,
    amount: formatFiat(order.amount),
    currency: order.currency,
    paymentMethod: order.paymentMethod,
    bankCode: order.bankCode ?? null,
    customerId: order.customerId ?? null,
    clientIp: order.clientIp ?? null,
    returnUrl: order.returnUrl ?? null,
    callbackUrl: order.callbackUrl ?? null,
    payoutDestination: order.payoutDestination ?? null
  })).digest()

const IDEMPOTENCY_KEY_TTL_HOURS = 24

export type CreateOutcome =
  | { readonly _tag: "Created"; readonly order: MerchantOrder }
  | { readonly _tag: "Existing"; readonly order: MerchantOrder }
  | { readonly _tag: "Replayed"; readonly status: number; readonly body: unknown }

/** Merchant-facing order intake and lookup. Writes only `incoming_orders` (plus idempotency keys). */
export class OrderService extends Effect.Service<OrderService>()("OrderService", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AppConfig
    const wakeup = yield* OrderWakeup
    const fraud = yield* FraudDetector

    const selectView = (storeId: number, incomingOrderId: number | null, merchantOrderId: string | null) =>
      sql`SELECT i.id, i.merchant_order_id, i.direction, i.amount, i.currency, i.status, i.failure_reason, i.created_at,
                 i.request_hash, o.id AS order_id, o.status AS order_status, o.exchange_rate, o.amount_crypto, o.expires_at,
                 r.bank_code AS requisite_bank_code, r.payment_method AS requisite_payment_method,
                 r.details AS requisite_details, r.holder_name AS requisite_holder_name
          FROM incoming_orders i
          LEFT JOIN order_history o ON o.incoming_order_id = i.id
          LEFT JOIN requisites r ON r.id = o.requisite_id
          WHERE i.store_id = ${storeId}
            AND ${incomingOrderId === null ? sql`i.merchant_order_id = ${merchantOrderId}` : sql`i.id = ${incomingOrderId}`}`
        .pipe(Effect.flatMap(decodeViewRows), Effect.map((rows) => Option.fromNullable(rows[0])))

    const validateReferences = (store: StorePrincipal, order: NewOrder) =>
      Effect.gen(function*() {
        const [row] = yield* sql<{ fiatCurrency: string; method: boolean; bank: boolean; payoutBank: boolean }>`
          SELECT s.fiat_currency,
                 EXISTS (SELECT 1 FROM payment_methods WHERE code = ${order.paymentMethod} AND is_active) AS method,
                 ${order.bankCode === undefined ? sql`true` : sql`EXISTS (SELECT 1 FROM banks WHERE code = ${order.bankCode} AND is_active)`} AS bank,
                 ${order.payoutDestination === undefined ? sql`true` : sql`EXISTS (SELECT 1 FROM banks WHERE code = ${order.payoutDestination.bankCode} AND is_active)`} AS payout_bank
          FROM merchant_stores s WHERE s.id = ${store.storeId}`
        const invalid = (field: string, message: string) => Effect.fail(new ValidationError({ field, message }))
        if (row === undefined) return yield* new NotFound({ entity: "store", message: "store not found" })
        if (order.currency !== row.fiatCurrency) {
          return yield* invalid("currency", `currency must be the store's currency ${row.fiatCurrency}`)
        }
        if (!row.method) return yield* invalid("paymentMethod", `paymentMethod ${order.paymentMethod} is not known`)
        if (!row.bank) return yield* invalid("bankCode", `bankCode ${order.bankCode} is not known`)
        if (!row.payoutBank) return yield* invalid("payoutDestination.bankCode", "payoutDestination.bankCode is not known")
      })

    const validateShape = (order: NewOrder) => {
      const invalid = (field: string, message: string) => Effect.fail(new ValidationError({ field, message }))
      if (order.direction === "payout" && order.payoutDestination === undefined) {
        return invalid("payoutDestination", "payoutDestination is required when direction is payout")
      }
      if (order.direction === "payin" && order.payoutDestination !== undefined) {
        return invalid("payoutDestination", "payoutDestination is only allowed when direction is payout")
      }
      if (order.callbackUrl !== undefined && !config.allowPrivateCallbackUrls && isPrivateHost(new URL(order.callbackUrl).hostname)) {
        return invalid("callbackUrl", "callbackUrl must not point to a private or loopback address")
      }
      return Effect.void
    }

    const insertOrder = (store: StorePrincipal, order: NewOrder, requestHash: Buffer) =>
      sql<{ id: number }>`INSERT INTO incoming_orders ${
        sql.insert({
          storeId: store.storeId,
          merchantOrderId: order.merchantOrderId,
          requestHash,
          direction: order.direction,
          amount: formatFiat(order.amount),
          currency: order.currency,
          paymentMethod: order.paymentMethod,
          bankCode: order.bankCode ?? null,
          customerId: order.customerId ?? null,
          clientIp: order.clientIp ?? null,
          returnUrl: order.returnUrl ?? null,
          callbackUrl: order.callbackUrl ?? null,
          payoutDestination: order.payoutDestination === undefined ? null : JSON.stringify(order.payoutDestination)
        })
      } ON CONFLICT (store_id, merchant_order_id) DO NOTHING RETURNING id`

    /**
     * Same merchantOrderId + same body → the first order; a different body → DuplicateOrder.
     * The unique key decides under concurrency: the loser's INSERT waits for the winner's commit.
     */
    const createOrReturnExisting = (store: StorePrincipal, order: NewOrder) =>
      Effect.gen(function*() {
        const requestHash = requestHashOf(order)
        const inserted = yield* insertOrder(store, order, requestHash)
        if (inserted[0] !== undefined) {
          yield* wakeup.notifyNewOrder(inserted[0].id)
          const view = yield* selectView(store.storeId, inserted[0].id, null)
          return { _tag: "Created", order: merchantOrderView(Option.getOrThrow(view)) } as const
        }
        const existing = Option.getOrThrow(yield* selectView(store.storeId, null, order.merchantOrderId))
        if (!Buffer.from(existing.requestHash).equals(requestHash)) {
          return yield* new DuplicateOrder({
            merchantOrderId: order.merchantOrderId,
            message: `merchantOrderId ${order.merchantOrderId} was already used for a different order`
          })
        }
        return { _tag: "Existing", order: merchantOrderView(existing) } as const
      })

    /**
     * Stripe's rules: the key is claimed (with the request's hash) in the same transaction as the
     * order, so a concurrent duplicate waits and then replays the stored response; a reused key
     * with another body is a conflict; keys live 24 hours.
     */
    const withIdempotencyKey = (store: StorePrincipal, key: string, order: NewOrder) =>
      Effect.gen(function*() {
        const requestHash = requestHashOf(order)
        yield* sql`DELETE FROM idempotency_keys WHERE store_id = ${store.storeId} AND key = ${key}
                   AND created_at < now() - make_interval(hours => ${IDEMPOTENCY_KEY_TTL_HOURS})`
        const claimed = yield* sql`INSERT INTO idempotency_keys ${sql.insert({ storeId: store.storeId, key, requestHash })}
                                   ON CONFLICT (store_id, key) DO NOTHING RETURNING key`
        if (claimed.length === 0) {
          const [stored] = yield* sql<{ requestHash: Uint8Array; responseStatus: number | null; responseBody: unknown }>`
            SELECT request_hash, response_status, response_body FROM idempotency_keys WHERE store_id = ${store.storeId} AND key = ${key}`
          if (stored === undefined || stored.responseStatus === null) {
            return yield* new Conflict({ entity: "idempotency_key", message: "a request with this Idempotency-Key is still in progress" })
          }
          if (!Buffer.from(stored.requestHash).equals(requestHash)) {
            return yield* new Conflict({ entity: "idempotency_key", message: "Idempotency-Key was already used with a different request" })
          }
          return { _tag: "Replayed", status: stored.responseStatus, body: stored.responseBody } as const
        }
        const outcome = yield* createOrReturnExisting(store, order)
        const status = outcome._tag === "Created" ? 201 : 200
        yield* sql`UPDATE idempotency_keys SET response_status = ${status}, response_body = ${JSON.stringify(outcome.order)}
                   WHERE store_id = ${store.storeId} AND key = ${key}`
        return outcome
      })

    const create = Effect.fn("OrderService.create")(function*(store: StorePrincipal, order: NewOrder, idempotencyKey: string | undefined) {
      yield* validateShape(order)
      yield* validateReferences(store, order)
      const body = idempotencyKey === undefined
        ? createOrReturnExisting(store, order)
        : withIdempotencyKey(store, idempotencyKey, order)
      const outcome: CreateOutcome = yield* atomic("order.create", body).pipe(
        // Two first requests racing on one idempotency key: the loser's insert fails only if the winner rolled back.
        Effect.catchIf((error) => error._tag === "SqlError" && isUniqueViolation(error), () =>
          Effect.fail(new Conflict({ entity: "order", message: "a concurrent request created this order; retry" })))
      )
      // Counted once, after commit: velocity counters must not count orders that never existed.
      if (outcome._tag === "Created") {
        yield* fraud.recordIncomingOrder({
          incomingOrderId: outcome.order.id,
          storeId: store.storeId,
          amountFiat: order.amount,
          customerId: order.customerId ?? null,
          clientIp: order.clientIp ?? null
        })
      }
      return outcome
    }, dieOnInfrastructure)

    const get = Effect.fn("OrderService.get")(function*(store: StorePrincipal, incomingOrderId: number) {
      const view = yield* selectView(store.storeId, incomingOrderId, null)
      if (Option.isNone(view)) return yield* new NotFound({ entity: "order", message: `order ${incomingOrderId} not found` })
      return merchantOrderView(view.value)
    }, dieOnInfrastructure)

    return { create, get } as const
  }),
  dependencies: [FraudDetector.Default]
}) {}
