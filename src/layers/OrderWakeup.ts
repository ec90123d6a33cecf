import { SqlClient, type SqlError } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Cause, Context, Data, Duration, Effect, Layer, PubSub, Schedule, Stream } from "effect"
import { DatabaseMode } from "./Database.js"

/**
 * Wakes the order workers the moment an incoming order is committed (SPEC §5.4), so the pick loop
 * does not wait out its poll interval. A wake-up carries no data and may be lost or duplicated:
 * workers treat it only as "look now"; polling remains the source of truth.
 */
export interface OrderWakeupService {
  /**
   * Call inside the intake transaction. On PostgreSQL the NOTIFY is transactional: it is delivered
   * at COMMIT and dropped on ROLLBACK, so no worker looks before the row is visible.
   */
  readonly notifyNewOrder: (incomingOrderId: number) => Effect.Effect<void, SqlError.SqlError>
  /** One element per wake-up; never fails (reconnects on its own), runs until interrupted. */
  readonly wakeups: Stream.Stream<void>
}

export const NEW_ORDER_CHANNEL = "jivapay_new_order"

/** Sent by every listener to itself: proves the LISTEN connection is alive, since `pg` drops its errors silently. */
const HEARTBEAT_PAYLOAD = "heartbeat"
const heartbeatInterval = Duration.seconds(20)
// Three missed heartbeats: the connection is gone (or stuck) and is replaced.
const listenSilenceMax = Duration.times(heartbeatInterval, 3)

/** Buffered wake-ups per subscriber in embedded mode; older ones slide out (one pending wake-up is enough). */
const embeddedWakeupsBuffered = 16

class ListenStale extends Data.TaggedError("ListenStale")<{ readonly message: string }> {}

/** Reconnecting the LISTEN connection: quick at first, then every 30 s at most, forever. */
export const listenReconnectPolicy = Schedule.exponential(Duration.millis(250), 2).pipe(
  Schedule.jittered,
  Schedule.union(Schedule.spaced(Duration.seconds(30)))
)

export class OrderWakeup extends Context.Tag("OrderWakeup")<OrderWakeup, OrderWakeupService>() {
  /** PostgreSQL: NOTIFY inside the intake transaction, LISTEN on a dedicated connection (not from the pool). */
  static readonly layerPostgres: Layer.Layer<OrderWakeup, never, PgClient.PgClient | SqlClient.SqlClient> = Layer.effect(
    OrderWakeup,
    Effect.gen(function*() {
      const pg = yield* PgClient.PgClient
      const sql = yield* SqlClient.SqlClient

      const notify = (payload: string) => Effect.asVoid(sql`SELECT pg_notify(${NEW_ORDER_CHANNEL}, ${payload})`)

      // The heartbeat lives and dies with one LISTEN session, so a replaced session gets its own.
      const heartbeat = notify(HEARTBEAT_PAYLOAD).pipe(
        Effect.catchAll((error) => Effect.logDebug("wake-up heartbeat not sent", error.message)),
        Effect.repeat(Schedule.spaced(heartbeatInterval))
      )

      const session = Stream.unwrapScoped(
        Effect.gen(function*() {
          yield* Effect.forkScoped(Effect.delay(heartbeat, Duration.seconds(1)))
          return pg.listen(NEW_ORDER_CHANNEL).pipe(
            Stream.timeoutFailCause(
              () => Cause.fail(new ListenStale({ message: `no notification for ${Duration.format(listenSilenceMax)}` })),
              listenSilenceMax
            )
          )
        })
      )

      const wakeups: Stream.Stream<void> = session.pipe(
        // A defect here (e.g. UNLISTEN on a dead client) is a lost connection too, never a reason to stop.
        Stream.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause) ? Stream.failCause(cause) : Stream.fail(Cause.squash(cause))
        ),
        Stream.tapError((error) => Effect.logWarning("LISTEN connection lost; reconnecting", error)),
        Stream.retry(listenReconnectPolicy),
        Stream.filter((payload) => payload !== HEARTBEAT_PAYLOAD),
        Stream.map(() => undefined),
        Stream.orDie
      )

      return {
        notifyNewOrder: (incomingOrderId: number) => notify(String(incomingOrderId)),
        wakeups
      }
    })
  )

  /**
   * Embedded PGlite serves a single connection: a LISTEN would hold it forever. The signal stays in
   * this process instead (which is the only process an embedded database can have). It is published
   * before COMMIT; the woken worker's pick query then waits for that one connection, i.e. for the
   * commit, so it still sees the new row.
   */
  static readonly layerMemory: Layer.Layer<OrderWakeup> = Layer.scoped(
    OrderWakeup,
    Effect.gen(function*() {
      const pubsub = yield* Effect.acquireRelease(
        PubSub.sliding<void>(embeddedWakeupsBuffered),
        PubSub.shutdown
      )
      return {
        notifyNewOrder: () => Effect.asVoid(PubSub.publish(pubsub, undefined)),
        wakeups: Stream.fromPubSub(pubsub)
      }
    })
  )

  /** Chosen by the database: LISTEN/NOTIFY on PostgreSQL, in-process PubSub on embedded PGlite. */
  static readonly layer: Layer.Layer<OrderWakeup, never, DatabaseMode | PgClient.PgClient | SqlClient.SqlClient> = Layer
    .unwrapEffect(
      Effect.map(DatabaseMode, (mode) => mode.embedded ? OrderWakeup.layerMemory : OrderWakeup.layerPostgres)
    )
}
