import { SqlClient, type SqlError } from "@effect/sql"
import { Effect, Option, ParseResult, Schema } from "effect"
import { randomUUID } from "node:crypto"
import { NotFound } from "../domain/Errors.js"
import { DecimalFromNumeric, formatCrypto, formatFiat, formatRate } from "../domain/Money.js"
import { Direction, IncomingOrderStatus, OrderStatus } from "../domain/Status.js"

/**
 * The merchant-callback outbox (SPEC §5.10): a row written in the same transaction as the status
 * change it announces, so a committed change always has its callback and a rolled-back one never
 * does. Delivery (signing, retries) belongs to the callback worker, which reads these rows.
 */

/** Event names the order lifecycle emits; others may be added by their owners. */
export type OrderEvent =
  | "order.assigned"
  | "order.failed"
  | "order.pending_trader_confirmation"
  | "order.completed"
  | "order.cancelled"
  | "order.dispute"
  | "order.requires_attention"
  | (string & {})

export interface CallbackEnqueue {
  readonly incomingOrderId: number
  readonly storeId: number
  readonly event: OrderEvent
  /** The JSON body the merchant receives; `orderEventPayload` builds the standard one. */
  readonly payload: Record<string, unknown>
}

export interface EnqueuedCallback {
  readonly id: number
  /** Sent as `webhook-id` on every delivery attempt of this event. */
  readonly eventId: string
  readonly url: string | null
  readonly status: "pending" | "skipped"
}

/** The order as the merchant knows it (SPEC §6.1), without the requisite: callbacks are not the payment page. */
export interface OrderEventPayload {
  readonly event: string
  readonly id: number
  readonly merchantOrderId: string
  readonly direction: Direction
  readonly status: IncomingOrderStatus
  readonly amount: string
  readonly currency: string
  readonly order: {
    readonly id: number
    readonly status: OrderStatus
    readonly exchangeRate: string
    readonly amountCrypto: string
    readonly expiresAt: string
  } | null
  readonly failureReason: string | null
  readonly occurredAt: string
}

const PayloadRow = Schema.Struct({
  id: Schema.Number,
  storeId: Schema.Number,
  merchantOrderId: Schema.String,
  direction: Direction,
  status: IncomingOrderStatus,
  amount: DecimalFromNumeric,
  currency: Schema.String,
  failureReason: Schema.NullOr(Schema.String),
  orderId: Schema.NullOr(Schema.Number),
  orderStatus: Schema.NullOr(OrderStatus),
  exchangeRate: Schema.NullOr(DecimalFromNumeric),
  amountCrypto: Schema.NullOr(DecimalFromNumeric),
  expiresAt: Schema.NullOr(Schema.DateFromSelf),
  occurredAt: Schema.DateFromSelf
})
type PayloadRow = typeof PayloadRow.Type
const decodePayloadRows = Schema.decodeUnknown(Schema.Array(PayloadRow))

export const orderEventPayload = (event: string, row: PayloadRow): OrderEventPayload => ({
  event,
  id: row.id,
  merchantOrderId: row.merchantOrderId,
  direction: row.direction,
  status: row.status,
  amount: formatFiat(row.amount),
  currency: row.currency,
  order: row.orderId === null || row.orderStatus === null || row.exchangeRate === null || row.amountCrypto === null ||
      row.expiresAt === null
    ? null
    : {
      id: row.orderId,
      status: row.orderStatus,
      exchangeRate: formatRate(row.exchangeRate),
      amountCrypto: formatCrypto(row.amountCrypto),
      expiresAt: row.expiresAt.toISOString()
    },
  failureReason: row.failureReason,
  occurredAt: row.occurredAt.toISOString()
})

export class CallbackOutbox extends Effect.Service<CallbackOutbox>()("CallbackOutbox", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    /**
     * Inserts one outbox row in the caller's transaction. The URL is fixed now (the order's own, else
     * the store's default) so a later settings change does not redirect events already raised; with
     * no URL at all the row is `skipped`, kept as the record that the event happened.
     */
    const enqueue = Effect.fn("CallbackOutbox.enqueue")(function*(input: CallbackEnqueue) {
      const eventId = randomUUID()
      const rows = yield* sql<{ id: number; url: string | null; status: "pending" | "skipped" }>`
        INSERT INTO merchant_callbacks (event_id, store_id, incoming_order_id, url, event, payload, status)
        SELECT ${eventId}, s.id, i.id, u.url, ${input.event}, ${JSON.stringify(input.payload)}::jsonb,
               CASE WHEN u.url IS NULL THEN 'skipped' ELSE 'pending' END
        FROM incoming_orders i
        JOIN merchant_stores s ON s.id = i.store_id
        CROSS JOIN LATERAL (SELECT COALESCE(i.callback_url, s.callback_url) AS url) u
        WHERE i.id = ${input.incomingOrderId} AND s.id = ${input.storeId}
        RETURNING id, url, status`
      const row = rows[0]
      if (row === undefined) {
        return yield* new NotFound({
          entity: "incoming_order",
          message: `incoming order ${input.incomingOrderId} of store ${input.storeId} not found`
        })
      }
      yield* Effect.logDebug("callback enqueued").pipe(
        Effect.annotateLogs({ incomingOrderId: input.incomingOrderId, event: input.event, eventId, status: row.status })
      )
      return { id: row.id, eventId, url: row.url, status: row.status } satisfies EnqueuedCallback
    })

    /** The standard payload, read in the caller's transaction so it shows the change just made. */
    const loadOrderEventPayload = (incomingOrderId: number, event: string) =>
      Effect.gen(function*() {
        const rows = yield* sql`SELECT i.id, i.store_id, i.merchant_order_id, i.direction, i.status, i.amount, i.currency,
                   i.failure_reason, o.id AS order_id, o.status AS order_status, o.exchange_rate, o.amount_crypto,
                   o.expires_at, clock_timestamp() AS occurred_at
            FROM incoming_orders i
            LEFT JOIN order_history o ON o.incoming_order_id = i.id
            WHERE i.id = ${incomingOrderId}`
        const decoded = yield* decodePayloadRows(rows)
        return Option.map(Option.fromNullable(decoded[0]), (row) => ({
          storeId: row.storeId,
          payload: orderEventPayload(event, row)
        }))
      })

    /** `enqueue` with the standard payload of the incoming order's current state. */
    const enqueueOrderEvent = Effect.fn("CallbackOutbox.enqueueOrderEvent")(
      function*(input: { readonly incomingOrderId: number; readonly event: OrderEvent }) {
        const loaded = yield* loadOrderEventPayload(input.incomingOrderId, input.event)
        if (Option.isNone(loaded)) {
          return yield* new NotFound({ entity: "incoming_order", message: `incoming order ${input.incomingOrderId} not found` })
        }
        return yield* enqueue({
          incomingOrderId: input.incomingOrderId,
          storeId: loaded.value.storeId,
          event: input.event,
          payload: { ...loaded.value.payload }
        })
      }
    )

    return { enqueue, enqueueOrderEvent } as const
  })
}) {}

export type CallbackOutboxError = NotFound | SqlError.SqlError | ParseResult.ParseError
