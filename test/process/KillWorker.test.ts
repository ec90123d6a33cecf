import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Duration, Effect, Logger, LogLevel } from "effect"
import { createRequisite, createStore, createTrader } from "../support/fixtures.js"
import {
  checkInvariants,
  eventually,
  insertIncomingOrders,
  ScratchDatabase,
  ScratchDatabaseLive,
  spawnWorker,
  workerEnv
} from "../support/workerProcess.js"

/**
 * SPEC §8: a worker process killed with SIGKILL in the middle of a batch (and, most likely, of a
 * transaction). Its claimed orders come back when their lease runs out and another process assigns
 * them; nothing is assigned twice and the holds add up.
 */

const ORDER_COUNT = 400
const CLAIM_LEASE = "4 seconds"

const counts = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    // A claim moves next_attempt_at (created = now() at insert) a lease ahead: claimed ⇔ moved.
    sql<{ assigned: number; claimed: number; orders: number }>`SELECT
        count(*) FILTER (WHERE status = 'assigned')::int AS assigned,
        count(*) FILTER (WHERE status IN ('new', 'retrying') AND next_attempt_at > created_at)::int AS claimed,
        (SELECT count(*)::int FROM order_history) AS orders
      FROM incoming_orders`,
    (rows) => rows[0]!
  ))

/** Room for every order: the test is about the kill, not about limits. */
const buildWorld = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`INSERT INTO exchange_rates (fiat_code, crypto_code, rate, source) VALUES ('RUB', 'USDT', '92.50000000', 'test')`
  const { storeId } = yield* createStore({ balance: "1000000.000000" })
  for (let trader = 0; trader < 8; trader++) {
    const { traderId } = yield* createTrader({ balance: "1000000.000000" })
    yield* createRequisite(traderId, {
      settings: { maxOrdersPerDay: 1000, maxOpenOrders: 1000, dailyTurnoverLimit: "100000000.00", monthlyTurnoverLimit: "100000000.00" }
    })
  }
  return Array.from({ length: ORDER_COUNT }, (_, index) => ({
    storeId,
    direction: index % 3 === 0 ? "payout" as const : "payin" as const,
    amount: (500 + (index % 50) * 37.5).toFixed(2),
    bankCode: null
  }))
})

layer(ScratchDatabaseLive({ maxConnections: 4 }), { excludeTestServices: true })("Killed worker", (it) => {
  it.effect("a worker SIGKILLed mid-batch: another process assigns the rest, nothing twice", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { url } = yield* ScratchDatabase
      const orders = yield* buildWorld

      // One slow worker: it claims everything in one batch and works through it one order at a time.
      const doomed = yield* spawnWorker(url, workerEnv({
        WORKER_BATCH_SIZE: 1000,
        WORKER_CONCURRENCY: 1,
        WORKER_CLAIM_LEASE: CLAIM_LEASE,
        WORKER_POLL_INTERVAL: "500 millis"
      }))
      yield* Effect.timeout(doomed.ready, Duration.seconds(60))
      yield* sql.withTransaction(Effect.zipRight(
        insertIncomingOrders(orders),
        sql`SELECT pg_notify('jivapay_new_order', 'batch')`
      ))

      yield* eventually("the first assignments", Effect.map(counts, (now) => now.assigned >= 20), Duration.seconds(30))
      yield* doomed.kill("SIGKILL")
      expect(yield* Effect.timeout(doomed.exited, Duration.seconds(10))).toBe("SIGKILL")

      const atKill = yield* counts
      // Mid-batch: part assigned, every other order claimed by the dead worker and left unprocessed.
      expect(atKill.assigned).toBeLessThan(ORDER_COUNT)
      expect(atKill.claimed).toBeGreaterThan(0)
      expect(atKill.claimed + atKill.assigned).toBe(ORDER_COUNT)
      // A transaction cut off by the kill left nothing behind: every order row belongs to an assignment.
      expect(atKill.orders).toBe(atKill.assigned)

      // The survivor: nothing is due until the dead worker's lease runs out, then it takes everything.
      const survivorStartedAtMs = Date.now()
      const survivor = yield* spawnWorker(url, workerEnv({ WORKER_POLL_INTERVAL: "500 millis" }))
      yield* Effect.timeout(survivor.ready, Duration.seconds(60))
      yield* eventually("every order assigned", Effect.map(counts, (now) => now.assigned === ORDER_COUNT), Duration.seconds(100))
      console.log(JSON.stringify({
        assignedBeforeKill: atKill.assigned,
        claimedAtKill: atKill.claimed,
        survivorMs: Date.now() - survivorStartedAtMs
      }))

      const result = yield* checkInvariants
      expect(result.violations).toEqual([])
      expect(result.incoming).toEqual({ assigned: ORDER_COUNT })
      expect(result.orders).toBe(ORDER_COUNT)
      // Each order was attempted by the survivor at most once more: the dead worker's attempt left no trace.
      const [retried] = yield* sql<{ count: number }>`SELECT count(*)::int AS count FROM incoming_orders WHERE retry_count > 0`
      expect(retried!.count).toBe(0)
    }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error)), 200_000)
})
