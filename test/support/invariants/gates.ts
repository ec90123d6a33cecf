import { SqlClient } from "@effect/sql"
import { Context, Deferred, Effect, Layer, Option, Ref } from "effect"
import { CallbackOutbox } from "../../../src/services/CallbackOutbox.js"
import { FraudDetector, type FraudResult } from "../../../src/services/FraudDetector.js"

/**
 * Failpoints that stop a transaction in the middle: a test arms a gate, the service under test
 * reaches it inside its transaction, reports the PostgreSQL backend pid of that transaction's
 * connection and waits until the test lets it go — by then the test may have killed the backend.
 *
 * - `fraud.incoming`: the OrderProcessor's fraud check, after the incoming order is locked and
 *   before anything is written.
 * - `outbox.<event>`: the merchant callback of a move, the last write of the OrderProcessor's
 *   assignment (after the order row and the hold) and of an OrderStatusManager move (after the
 *   status, the posting or void, and the audit row) — everything written, nothing committed.
 */

export type GatePoint = "fraud.incoming" | `outbox.${string}`

export interface Gate {
  readonly point: GatePoint
  /** Completed with `pg_backend_pid()` of the stopped transaction. */
  readonly reached: Deferred.Deferred<number>
  readonly release: Deferred.Deferred<void>
}

export class Gates extends Context.Tag("test/Gates")<Gates, Ref.Ref<Option.Option<Gate>>>() {}

export const GatesLive = Layer.effect(Gates, Ref.make(Option.none<Gate>()))

/** Arms one gate; the first transaction that reaches it stops there (and disarms it). */
export const armGate = (point: GatePoint) =>
  Effect.gen(function*() {
    const gate: Gate = { point, reached: yield* Deferred.make<number>(), release: yield* Deferred.make<void>() }
    yield* Ref.set(yield* Gates, Option.some(gate))
    return gate
  })

const passGate = (gates: Ref.Ref<Option.Option<Gate>>, sql: SqlClient.SqlClient, point: GatePoint) =>
  Effect.gen(function*() {
    const armed = yield* Ref.modify(gates, (current) =>
      Option.isSome(current) && current.value.point === point
        ? [current, Option.none<Gate>()] as const
        : [Option.none<Gate>(), current] as const)
    if (Option.isNone(armed)) return
    // Runs in the caller's transaction: this is the backend that holds its uncommitted writes.
    const [row] = yield* Effect.orDie(sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`)
    yield* Deferred.succeed(armed.value.reached, row!.pid)
    yield* Deferred.await(armed.value.release)
  })

const allow: FraudResult = { decision: "ALLOW", rule: null, reason: "test: allowed" }

/** A detector that allows everything, with the `fraud.incoming` gate in the processor's check. */
export const GatedFraudDetector = Layer.effect(
  FraudDetector,
  Effect.gen(function*() {
    const gates = yield* Gates
    const sql = yield* SqlClient.SqlClient
    return FraudDetector.make({
      checkIncomingOrder: () => Effect.as(passGate(gates, sql, "fraud.incoming"), allow),
      checkOrderConfirmation: () => Effect.succeed(allow),
      recordIncomingOrder: () => Effect.void
    } as unknown as Parameters<typeof FraudDetector.make>[0])
  })
)

/** The real outbox, with an `outbox.<event>` gate before each order event is written. */
export const GatedOutbox = Layer.effect(
  CallbackOutbox,
  Effect.gen(function*() {
    const gates = yield* Gates
    const sql = yield* SqlClient.SqlClient
    const real = yield* Effect.provide(CallbackOutbox, CallbackOutbox.Default)
    return CallbackOutbox.make({
      enqueue: real.enqueue,
      enqueueOrderEvent: (input) => Effect.zipRight(passGate(gates, sql, `outbox.${input.event}`), real.enqueueOrderEvent(input))
    })
  })
)

/** Ends another session's backend, as a crashed network or an operator would. */
export const terminateBackend = (pid: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      Effect.orDie(sql<{ terminated: boolean }>`SELECT pg_terminate_backend(${pid}) AS terminated`),
      (rows) => rows[0]?.terminated === true
    ))

/** Whether a backend with this pid still exists. */
export const backendAlive = (pid: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      Effect.orDie(sql<{ alive: boolean }>`SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = ${pid}) AS alive`),
      (rows) => rows[0]?.alive === true
    ))
