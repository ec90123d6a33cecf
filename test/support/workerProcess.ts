import { SqlClient } from "@effect/sql"
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { Context, Deferred, Duration, Effect, Layer, Redacted, Schedule } from "effect"
import { pgLayer } from "../../src/layers/Database.js"
import { runMigrations } from "../../src/layers/Migrations.js"
import { createScratchDatabase } from "./TestDatabase.js"

/**
 * Worker processes for the multi-process suites: each one is `src/main.ts worker`, the production
 * entry point, run by node with tsx in a child process on a scratch database.
 */

const repositoryRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

/** A migrated scratch database whose URL child processes can use; the suite's own pool is on it too. */
export class ScratchDatabase extends Context.Tag("ScratchDatabase")<ScratchDatabase, { readonly url: string }>() {}

export const ScratchDatabaseLive = (options: { readonly maxConnections?: number } = {}) =>
  Layer.unwrapScoped(
    Effect.map(createScratchDatabase, ({ url }) =>
      Layer.provideMerge(
        Layer.effectDiscard(runMigrations()),
        Layer.merge(pgLayer(Redacted.make(url), options.maxConnections ?? 10), Layer.succeed(ScratchDatabase, { url }))
      ))
  )

export interface WorkerProcess {
  readonly pid: number
  readonly child: ChildProcess
  /** Resolves when the worker logged that it started (after migrations). */
  readonly ready: Effect.Effect<void>
  /** Resolves with the exit code or signal. */
  readonly exited: Effect.Effect<string>
  /** The newest output of the child, for failure messages. */
  readonly output: () => string
  readonly kill: (signal: NodeJS.Signals) => Effect.Effect<void>
}

// Output kept per child: enough for a stack trace, bounded however chatty the child is.
const outputCharsMax = 20_000

/**
 * Starts `src/main.ts worker` against `databaseUrl`. The process is SIGKILLed (if still running) when
 * the scope closes, so a failing test never leaves workers behind.
 */
export const spawnWorker = (databaseUrl: string, env: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const readyDeferred = yield* Deferred.make<void>()
      const exitDeferred = yield* Deferred.make<string>()
      const dataDir = mkdtempSync(join(tmpdir(), "jivapay-worker-"))
      const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "worker"], {
        cwd: repositoryRoot,
        env: {
          PATH: process.env.PATH ?? "",
          HOME: process.env.HOME ?? tmpdir(),
          DATABASE_URL: databaseUrl,
          DATA_DIR: dataDir,
          // "order worker started" is logged at info: `ready` waits for it.
          LOG_LEVEL: "info",
          ...env
        },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      const onData = (chunk: Buffer) => {
        output = (output + chunk.toString("utf8")).slice(-outputCharsMax)
        if (output.includes("order worker started")) Deferred.unsafeDone(readyDeferred, Effect.void)
      }
      child.stdout!.on("data", onData)
      child.stderr!.on("data", onData)
      child.on("exit", (code, signal) => Deferred.unsafeDone(exitDeferred, Effect.succeed(signal ?? `exit ${code}`)))
      const exited = Deferred.await(exitDeferred)
      const worker: WorkerProcess = {
        pid: child.pid!,
        child,
        ready: Effect.raceFirst(
          Deferred.await(readyDeferred),
          Effect.flatMap(exited, (how) => Effect.dieMessage(`worker ${child.pid} exited (${how}) before it started:\n${output}`))
        ),
        exited,
        output: () => output,
        kill: (signal) =>
          Effect.sync(() => {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal)
          })
      }
      return worker
    }),
    (worker) =>
      Effect.gen(function*() {
        yield* worker.kill("SIGKILL")
        yield* Effect.timeout(worker.exited, Duration.seconds(10)).pipe(Effect.ignore)
      })
  )

/** Environment variables from settings (numbers and durations as the Config parsers read them). */
export const workerEnv = (settings: Record<string, string | number>) =>
  Object.fromEntries(Object.entries(settings).map(([key, value]) => [key, String(value)]))

/** Polls `check` until it holds, or fails after `timeout`. */
export const eventually = <E, R>(what: string, check: Effect.Effect<boolean, E, R>, timeout: Duration.DurationInput) =>
  check.pipe(
    Effect.repeat({ schedule: Schedule.spaced(Duration.millis(100)), until: (done) => done }),
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error(`timed out waiting for ${what}`) })
  )

/** Incoming orders in one statement (the merchant API would insert them one by one; the queue is the same). */
export const insertIncomingOrders = (
  orders: ReadonlyArray<{
    readonly storeId: number
    readonly direction: "payin" | "payout"
    readonly amount: string
    readonly bankCode: string | null
  }>
) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ id: number }>`INSERT INTO incoming_orders ${
      sql.insert(orders.map((order, index) => ({
        storeId: order.storeId,
        merchantOrderId: `load-${index}-${randomBytes(4).toString("hex")}`,
        requestHash: randomBytes(32),
        direction: order.direction,
        amount: order.amount,
        currency: "RUB",
        paymentMethod: "card",
        bankCode: order.bankCode,
        payoutDestination: order.direction === "payout"
          ? JSON.stringify({ details: "2202000000000000", holderName: "PETR PETROV", bankCode: "sber" })
          : null
      })))
    } RETURNING id`.pipe(Effect.map((rows) => rows.map((row) => row.id))))

export { seededRandom } from "./random.js"

export interface InvariantReport {
  readonly incoming: Record<string, number>
  readonly orders: number
  readonly violations: ReadonlyArray<string>
}

/**
 * SPEC §8 after a run, recomputed from the rows themselves: every order assigned at most once and
 * consistently; no requisite over a limit; every hold placed once; frozen amounts equal to the holds
 * of the orders; no balance below its holds; one callback per final state.
 */
export const checkInvariants = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const violations: Array<string> = []
  const report = (label: string, rows: ReadonlyArray<unknown>) => {
    if (rows.length > 0) violations.push(`${label}: ${JSON.stringify(rows.slice(0, 5))}`)
  }

  const statusRows = yield* sql<{ status: string; count: number }>`SELECT status, count(*)::int AS count
    FROM incoming_orders GROUP BY status`
  const incoming = Object.fromEntries(statusRows.map((row) => [row.status, row.count]))
  const [orders] = yield* sql<{ count: number }>`SELECT count(*)::int AS count FROM order_history`

  report("incoming order with more than one order", yield* sql`SELECT incoming_order_id, count(*)::int AS n
    FROM order_history GROUP BY incoming_order_id HAVING count(*) > 1`)
  report("assigned incoming order without its order", yield* sql`SELECT i.id FROM incoming_orders i
    LEFT JOIN order_history h ON h.id = i.assigned_order_id AND h.incoming_order_id = i.id
    WHERE i.status = 'assigned' AND h.id IS NULL`)
  report("order whose incoming order is not assigned to it", yield* sql`SELECT h.id FROM order_history h
    JOIN incoming_orders i ON i.id = h.incoming_order_id
    WHERE i.status <> 'assigned' OR i.assigned_order_id IS DISTINCT FROM h.id`)

  // Every limit, over every order of the run (a run never spans midnight in practice; stricter otherwise).
  report("requisite over a limit", yield* sql`SELECT r.id, count(h.id)::int AS orders, coalesce(sum(h.amount_fiat), 0) AS turnover,
      count(h.id) FILTER (WHERE h.status IN ('assigned', 'pending_trader_confirmation'))::int AS open,
      s.max_orders_per_day, s.daily_turnover_limit, s.monthly_turnover_limit, s.max_open_orders
    FROM requisites r JOIN full_requisites_settings s ON s.requisite_id = r.id
    LEFT JOIN order_history h ON h.requisite_id = r.id
    GROUP BY r.id, s.requisite_id
    HAVING count(h.id) > s.max_orders_per_day
        OR coalesce(sum(h.amount_fiat), 0) > s.daily_turnover_limit
        OR coalesce(sum(h.amount_fiat), 0) > s.monthly_turnover_limit
        OR count(h.id) FILTER (WHERE h.status IN ('assigned', 'pending_trader_confirmation')) > s.max_open_orders
        OR bool_or(h.amount_fiat < s.min_amount OR h.amount_fiat > s.max_amount)
        OR bool_or(CASE h.direction WHEN 'payin' THEN NOT s.payin_enabled ELSE NOT s.payout_enabled END)`)

  report("order without exactly one hold", yield* sql`SELECT h.id FROM order_history h
    WHERE (SELECT count(*) FROM ledger_transfers l WHERE l.order_id = h.id AND l.kind = 'hold') <> 1`)
  report("trader frozen ≠ PayIn holds, or balance < frozen", yield* sql`SELECT b.trader_id, b.balance, b.frozen, x.held
    FROM balance_traders b
    CROSS JOIN LATERAL (SELECT coalesce(sum(h.amount_crypto - h.trader_reward_crypto), 0) AS held
      FROM order_history h WHERE h.trader_id = b.trader_id AND h.direction = 'payin') x
    WHERE b.frozen <> x.held OR b.balance < b.frozen`)
  report("store frozen ≠ PayOut holds, or balance < frozen", yield* sql`SELECT b.store_id, b.balance, b.frozen, x.held
    FROM balance_stores b
    CROSS JOIN LATERAL (SELECT coalesce(sum(h.amount_crypto + h.store_commission_crypto), 0) AS held
      FROM order_history h WHERE h.store_id = b.store_id AND h.direction = 'payout') x
    WHERE b.frozen <> x.held OR b.balance < b.frozen`)

  report("final status without exactly one matching callback", yield* sql`SELECT i.id, i.status,
      (SELECT string_agg(c.event, ',') FROM merchant_callbacks c WHERE c.incoming_order_id = i.id) AS events
    FROM incoming_orders i
    WHERE (SELECT count(*) FROM merchant_callbacks c WHERE c.incoming_order_id = i.id) <>
          CASE WHEN i.status IN ('assigned', 'failed', 'manual_review') THEN 1 ELSE 0 END
       OR (i.status = 'assigned' AND NOT EXISTS (SELECT 1 FROM merchant_callbacks c
             WHERE c.incoming_order_id = i.id AND c.event = 'order.assigned'))`)

  return { incoming, orders: orders?.count ?? 0, violations } satisfies InvariantReport
})
