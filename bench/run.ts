import { NodeRuntime } from "@effect/platform-node"
import type { PgClient } from "@effect/sql-pg"
import { Console, Duration, Effect } from "effect"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { openPool, type PgbenchResult, runPgbench, scratchDatabase } from "./Database.js"
import { makeJsonClient } from "./Http.js"
import { closedLoop, type LoadResult, openLoop } from "./LoadGenerator.js"
import { type AppProcess, freePort, projectRoot, readMemory, runAppCommand, startApp, waitForHealth } from "./Processes.js"
import { describeMachine, fixed, loadAverage, type Machine, markdownTable, megabytes } from "./Report.js"
import { buildWorld, insertOrders, orderBody, seededRandom, uniqueRunTag, type World } from "./World.js"

/**
 * `npm run bench`: SPEC §8's performance figures, measured side by side in one run on a scratch
 * database of the local PostgreSQL. Not a test: nothing here passes or fails on a number; the ratios
 * are what compare across machines. Every phase is bounded in count and time, every child process is
 * killed and the scratch database dropped when the run ends, however it ends.
 *
 * Back of the envelope: a TPC-B transaction is 5 statements (~7 round trips with BEGIN/END). One
 * assignment is one transaction of roughly 15–20 round trips (lock the order, fraud check, pick and
 * lock a requisite, check its limits, a savepoint, the order row, the hold and its ledger rows, the
 * incoming order, the audit and callback rows), so if PostgreSQL were the only cost the ratio would be
 * about 0.4. The workers' own CPU (Effect, Schema, JSON logs) shares the same cores as PostgreSQL and
 * the load generator, so on a small machine expect well below that; a drop between runs on the same
 * machine is what to look at.
 */

/** An integer knob from the environment, bounded so a typo cannot start an unbounded run. */
const envInt = (name: string, fallback: number, min: number, max: number) => {
  const raw = process.env[name]
  const value = raw === undefined ? fallback : Number(raw)
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer between ${min} and ${max}, got ${raw}`)
  }
  return value
}

const settings = {
  pgbench: { scale: 4, clients: 8, threads: 2, durationSeconds: envInt("BENCH_PGBENCH_SECONDS", 15, 1, 120) },
  world: { traders: 20, requisitesPerTrader: 2 },
  workerProcesses: envInt("BENCH_WORKERS", 2, 1, 4),
  workerConcurrency: 8,
  throughput: { warmupOrders: 200, orders: envInt("BENCH_ORDERS", 5_000, 100, 50_000), timeoutSeconds: 120 },
  latency: { ratePerSecond: 50, durationSeconds: 20, inFlightMax: 64, drainTimeoutSeconds: 60 },
  intake: { concurrency: 32, durationSeconds: envInt("BENCH_INTAKE_SECONDS", 15, 1, 120) },
  /** The whole run; past it everything is interrupted and cleaned up. */
  runTimeoutSeconds: 480
} as const

const resultsPath = join(projectRoot, "bench", "results.md")
const progress = (message: string) => Console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`)

// ---------------------------------------------------------------------------------------------
// Orders in the database

interface Settlement {
  readonly total: number
  readonly pending: number
  readonly assigned: number
  readonly failed: number
  readonly manualReview: number
  /** Failed attempts recorded on these orders (each one was retried or gave up). */
  readonly retries: number
}

/** Where the orders with ids in [firstId, lastId] stand. */
const settlement = (sql: PgClient.PgClient, firstId: number, lastId: number) =>
  Effect.map(
    sql<Settlement>`SELECT count(*)::int AS total,
        count(*) FILTER (WHERE status IN ('new', 'retrying'))::int AS pending,
        count(*) FILTER (WHERE status = 'assigned')::int AS assigned,
        count(*) FILTER (WHERE status = 'failed')::int AS failed,
        count(*) FILTER (WHERE status = 'manual_review')::int AS manual_review,
        coalesce(sum(retry_count), 0)::int AS retries
      FROM incoming_orders WHERE id BETWEEN ${firstId} AND ${lastId}`,
    (rows) => rows[0]!
  )

// Short against the seconds a batch takes; one indexed count per poll.
const settlementPollInterval = Duration.millis(50)

/** Polls until none of the orders is pending; fails after `timeout` with where they stand. */
const waitUntilSettled = (sql: PgClient.PgClient, firstId: number, lastId: number, timeoutSeconds: number) => {
  let last: Settlement | undefined
  return Effect.gen(function*() {
    while (true) {
      last = yield* settlement(sql, firstId, lastId)
      if (last.pending === 0) return last
      yield* Effect.sleep(settlementPollInterval)
    }
  }).pipe(
    Effect.timeoutFail({
      duration: Duration.seconds(timeoutSeconds),
      onTimeout: () => new Error(`orders ${firstId}..${lastId} not settled within ${timeoutSeconds} s: ${JSON.stringify(last)}`)
    })
  )
}

const idRange = (sql: PgClient.PgClient, merchantOrderIdPrefix: string) =>
  Effect.map(
    sql<{ firstId: number | null; lastId: number | null }>`SELECT min(id)::int AS first_id, max(id)::int AS last_id
      FROM incoming_orders WHERE merchant_order_id LIKE ${`${merchantOrderIdPrefix}%`}`,
    (rows) => ({ firstId: rows[0]?.firstId ?? 0, lastId: rows[0]?.lastId ?? -1 })
  )

// ---------------------------------------------------------------------------------------------
// Phases

interface ThroughputResult {
  readonly orders: number
  readonly elapsedMs: number
  readonly ordersPerSecond: number
  readonly settlement: Settlement
}

/**
 * All orders committed at once with one NOTIFY, the workers already running and idle: the time from
 * the commit until none is pending is pure assignment work, not process start-up or intake.
 */
const assignBatch = (sql: PgClient.PgClient, world: World, label: string, count: number, seed: number) =>
  Effect.gen(function*() {
    const random = seededRandom(seed)
    const tag = uniqueRunTag()
    const orders = Array.from({ length: count }, (_, index) => orderBody(random, `${label}-${tag}-${index}`))
    const ids = yield* insertOrders(sql, world.storeId, orders)
    const committedAt = performance.now()
    const firstId = Math.min(...ids)
    const lastId = Math.max(...ids)
    const state = yield* waitUntilSettled(sql, firstId, lastId, settings.throughput.timeoutSeconds)
    const elapsedMs = performance.now() - committedAt
    return { orders: count, elapsedMs, ordersPerSecond: state.assigned / (elapsedMs / 1000), settlement: state } satisfies ThroughputResult
  })

interface LatencyResult {
  readonly load: LoadResult & { readonly skipped: number }
  readonly settlement: Settlement
  readonly p50Ms: number
  readonly p95Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  /** Per second of arrival: orders and their worst latency; shows whether a tail is steady or a stall. */
  readonly timeline: ReadonlyArray<{ readonly second: number; readonly orders: number; readonly maxMs: number }>
}

/** Steady intake through the API with the workers running; latency computed by PostgreSQL from the rows. */
const insertToAssignedLatency = (
  sql: PgClient.PgClient,
  client: ReturnType<typeof makeJsonClient>,
  world: World
) =>
  Effect.gen(function*() {
    const random = seededRandom(20261127)
    const prefix = `lat-${uniqueRunTag()}-`
    const load = yield* openLoop({
      ratePerSecond: settings.latency.ratePerSecond,
      durationMs: settings.latency.durationSeconds * 1000,
      inFlightMax: settings.latency.inFlightMax,
      okStatus: 201,
      send: (sequence) =>
        client.request("POST", "/api/merchant/orders", {
          body: orderBody(random, `${prefix}${sequence}`),
          headers: { "x-api-key": world.apiKey }
        })
    })
    const { firstId, lastId } = yield* idRange(sql, prefix)
    const state = yield* waitUntilSettled(sql, firstId, lastId, settings.latency.drainTimeoutSeconds)
    const [row] = yield* sql<{ p50: number | null; p95: number | null; p99: number | null; max: number | null }>`
      SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50,
             percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95,
             percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99,
             max(ms) AS max
      FROM (SELECT extract(epoch FROM h.created_at - i.created_at) * 1000 AS ms
            FROM incoming_orders i JOIN order_history h ON h.incoming_order_id = i.id
            WHERE i.id BETWEEN ${firstId} AND ${lastId}) latencies`
    const value = (ms: number | null | undefined) => ms === null || ms === undefined ? Number.NaN : Number(ms)
    const timeline = yield* sql<{ second: number; orders: number; maxMs: number }>`
      SELECT floor(extract(epoch FROM i.created_at - first.at))::int AS second, count(*)::int AS orders,
             round(max(extract(epoch FROM h.created_at - i.created_at) * 1000))::int AS max_ms
      FROM incoming_orders i JOIN order_history h ON h.incoming_order_id = i.id
      CROSS JOIN (SELECT min(created_at) AS at FROM incoming_orders WHERE id BETWEEN ${firstId} AND ${lastId}) first
      WHERE i.id BETWEEN ${firstId} AND ${lastId}
      GROUP BY 1 ORDER BY 1`
    return {
      load,
      settlement: state,
      p50Ms: value(row?.p50),
      p95Ms: value(row?.p95),
      p99Ms: value(row?.p99),
      maxMs: value(row?.max),
      timeline
    } satisfies LatencyResult
  })

/** The closed-loop intake load against `serve` alone: what the API sustains with 32 busy merchants. */
const intakeThroughput = (client: ReturnType<typeof makeJsonClient>, world: World) => {
  const random = seededRandom(20261128)
  const prefix = `rps-${uniqueRunTag()}-`
  return closedLoop({
    concurrency: settings.intake.concurrency,
    durationMs: settings.intake.durationSeconds * 1000,
    okStatus: 201,
    send: (sequence) =>
      client.request("POST", "/api/merchant/orders", {
        body: orderBody(random, `${prefix}${sequence}`),
        headers: { "x-api-key": world.apiKey }
      })
  })
}

interface ServerMemory {
  readonly residentBytes: number
  readonly heapUsedBytes: number
}

/** The server's own memory gauges on /metrics; NaN when it does not answer. */
const serverMetricsMemory = (server: AppProcess) =>
  Effect.tryPromise(() => fetch(`${server.baseUrl}/metrics`, { signal: AbortSignal.timeout(5_000) }).then((r) => r.text())).pipe(
    Effect.map((text): ServerMemory => {
      const gauge = (name: string) => Number(new RegExp(`^${name} (\\d+)`, "m").exec(text)?.[1] ?? Number.NaN)
      return {
        residentBytes: gauge("jivapay_process_resident_memory_bytes"),
        heapUsedBytes: gauge("jivapay_process_heap_used_bytes")
      }
    }),
    Effect.orElseSucceed((): ServerMemory => ({ residentBytes: Number.NaN, heapUsedBytes: Number.NaN }))
  )

interface RssSnapshot {
  readonly phase: string
  readonly rssBytes: ReadonlyArray<readonly [string, number]>
}

const rssSnapshot = (phase: string, processes: ReadonlyArray<AppProcess>): RssSnapshot => ({
  phase,
  rssBytes: processes.flatMap((app) => {
    const sample = app.isAlive() ? readMemory(app.pid) : undefined
    return sample === undefined ? [] : [[app.name, sample.rssBytes] as const]
  })
})

// ---------------------------------------------------------------------------------------------
// Report

interface Results {
  readonly machine: Machine
  readonly loadAverageAfter: string
  readonly postgres: { readonly version: string; readonly settings: string }
  readonly world: World
  readonly pgbench: PgbenchResult
  readonly warmup: ThroughputResult
  readonly throughput: ThroughputResult
  readonly latency: LatencyResult
  readonly intake: LoadResult
  readonly memory: {
    readonly peakRss: ReadonlyArray<readonly [string, number]>
    readonly metricsAfterLatency: ServerMemory
    readonly metricsAfterIntake: ServerMemory
    /** VmRSS of every live process at the end of each phase: growth from phase to phase is what to watch. */
    readonly rssByPhase: ReadonlyArray<RssSnapshot>
  }
}

const summaryRows = (results: Results): ReadonlyArray<ReadonlyArray<string>> => {
  const { intake, latency, pgbench, throughput } = results
  const workers = `${settings.workerProcesses} worker process(es) × WORKER_CONCURRENCY ${settings.workerConcurrency}`
  const errorKinds = Object.entries(intake.errorKinds).map(([kind, count]) => `${kind}: ${count}`).join(", ")
  return [
    [
      "pgbench TPC-B baseline",
      `${fixed(pgbench.tps)} TPS`,
      `-s ${pgbench.scale} -c ${pgbench.clients} -j ${pgbench.threads} -T ${pgbench.durationSeconds}; latency avg ${
        fixed(pgbench.latencyAverageMs, 2)
      } ms`
    ],
    [
      "Order assignment throughput",
      `${fixed(throughput.ordersPerSecond)} orders/s`,
      `${throughput.orders} orders inserted in one transaction, ${workers}; all settled in ${
        fixed(throughput.elapsedMs / 1000, 2)
      } s; assigned ${throughput.settlement.assigned}, failed ${throughput.settlement.failed}, review ${throughput.settlement.manualReview}, retried attempts ${throughput.settlement.retries}`
    ],
    [
      "**Assignment ÷ TPC-B**",
      `**${fixed(throughput.ordersPerSecond / pgbench.tps, 3)}**`,
      "orders assigned per TPC-B transaction, same database, same run"
    ],
    [
      "Insert→assigned latency",
      `p50 ${fixed(latency.p50Ms)} ms, p95 ${fixed(latency.p95Ms)} ms, p99 ${fixed(latency.p99Ms)} ms (max ${fixed(latency.maxMs)} ms)`,
      `order_history.created_at − incoming_orders.created_at over ${latency.settlement.assigned} orders; ${settings.latency.ratePerSecond}/s through the API for ${settings.latency.durationSeconds} s (${latency.load.ok} accepted, ${latency.load.errors} errors, ${latency.load.skipped} skipped); ${workers}`
    ],
    [
      "POST /api/merchant/orders",
      `${fixed(intake.requestsPerSecond)} req/s`,
      `serve only, ${settings.intake.concurrency} keep-alive clients, ${settings.intake.durationSeconds} s: ${intake.requests} requests, latency p50 ${
        fixed(intake.latencyMs.p50, 2)
      } ms, p99 ${fixed(intake.latencyMs.p99, 2)} ms, max ${fixed(intake.latencyMs.max, 2)} ms; errors ${intake.errors}${
        errorKinds.length > 0 ? ` (${errorKinds})` : ""
      }`
    ],
    [
      "Intake ÷ TPC-B",
      fixed(intake.ok / (intake.elapsedMs / 1000) / pgbench.tps, 3),
      "accepted (201) POST /api/merchant/orders per TPC-B transaction"
    ],
    ...results.memory.peakRss.map(([name, bytes]) => [`Peak RSS ${name}`, megabytes(bytes), "VmHWM from /proc over the whole run"]),
    [
      "RSS by phase",
      results.memory.rssByPhase.map((snapshot) =>
        `${snapshot.phase}: ${snapshot.rssBytes.map(([name, bytes]) => `${name} ${megabytes(bytes)}`).join(", ")}`
      ).join("; "),
      "VmRSS at the end of each phase"
    ],
    [
      "/metrics resident memory (server)",
      `${megabytes(results.memory.metricsAfterLatency.residentBytes)} / ${megabytes(results.memory.metricsAfterIntake.residentBytes)} (heap used ${
        megabytes(results.memory.metricsAfterLatency.heapUsedBytes)
      } / ${megabytes(results.memory.metricsAfterIntake.heapUsedBytes)})`,
      "jivapay_process_resident_memory_bytes (and jivapay_process_heap_used_bytes) after the latency phase / after the intake phase"
    ]
  ]
}

const renderResults = (results: Results) => {
  const table = markdownTable(["Benchmark", "Result", "Conditions"], summaryRows(results))
  return `# Benchmark results

Produced by \`npm run bench\` (bench/run.ts); see bench/README.md for what each number means.
Ratios compare figures measured side by side in this one run; absolute numbers depend on the machine.

${table}

## Machine

- date: ${results.machine.date}
- CPU: ${results.machine.cpuModel}, nproc ${results.machine.nproc}
- kernel: ${results.machine.kernel}
- /proc/loadavg before the run: ${results.machine.loadAverageBefore}; after: ${results.loadAverageAfter}
- node: ${results.machine.node}
- PostgreSQL: ${results.postgres.version}
- PostgreSQL settings: ${results.postgres.settings}
- ${results.machine.pgbench}
- world: ${results.world.traders} traders, ${results.world.requisites} requisites, 1 store; warm-up of ${results.warmup.orders} orders assigned at ${
    fixed(results.warmup.ordersPerSecond)
  } orders/s before the measured batch

\`free -h\`:

\`\`\`text
${results.machine.memory}
\`\`\`

## Raw

\`\`\`json
${JSON.stringify({ settings, ...results, machine: undefined }, (_, value) => (typeof value === "number" && !Number.isFinite(value) ? null : value), 2)}
\`\`\`
`
}

// ---------------------------------------------------------------------------------------------
// The run

const run = Effect.gen(function*() {
  const machine = yield* describeMachine
  const database = yield* scratchDatabase
  yield* progress(`scratch database ${database.name}`)

  yield* progress(`pgbench TPC-B: -i -s ${settings.pgbench.scale}, then -c ${settings.pgbench.clients} -j ${settings.pgbench.threads} -T ${settings.pgbench.durationSeconds}`)
  const pgbench = yield* runPgbench(database.url, settings.pgbench)
  yield* progress(`pgbench: ${fixed(pgbench.tps)} TPS`)

  const dataDir = yield* Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), "jivapay-bench-"))),
    (directory) => Effect.sync(() => rmSync(directory, { recursive: true, force: true }))
  )
  const admin = { email: "admin@bench.test", password: randomBytes(12).toString("hex") }
  const appEnv = {
    DATABASE_URL: database.url,
    DATA_DIR: dataDir,
    SEED_DEMO: "false",
    ADMIN_EMAIL: admin.email,
    ADMIN_PASSWORD: admin.password,
    WORKER_CONCURRENCY: String(settings.workerConcurrency),
    // The default level: the per-order info logs are part of what production pays for.
    LOG_LEVEL: "info",
    ...(process.env.BENCH_REDIS_URL === undefined ? {} : { REDIS_URL: process.env.BENCH_REDIS_URL })
  }

  // `serve` and `worker` only migrate; `seed` creates the admin (and, with SEED_DEMO=false, nothing else).
  yield* progress("migrate and seed (src/main.ts seed)")
  yield* runAppCommand({ name: "seed", command: "seed", port: yield* freePort, env: appEnv, timeout: Duration.seconds(90) })
  const server = yield* startApp({ name: "server", command: "serve", port: yield* freePort, env: appEnv })
  yield* waitForHealth(server, Duration.seconds(90))
  yield* progress(`server (src/main.ts serve) healthy at ${server.baseUrl}, pid ${server.pid}`)

  const setupClient = yield* Effect.acquireRelease(Effect.sync(() => makeJsonClient(server.baseUrl, 4)), (client) =>
    Effect.sync(client.close))
  const world = yield* buildWorld(setupClient, admin, settings.world)
  yield* progress(`world: store ${world.storeId}, ${world.traders} traders, ${world.requisites} requisites`)

  const sql = yield* openPool(database.url, 4)
  const workers = yield* Effect.forEach(
    Array.from({ length: settings.workerProcesses }, (_, index) => index + 1),
    (index) =>
      Effect.flatMap(freePort, (port) => startApp({ name: `worker-${index}`, command: "worker", port, env: appEnv })),
    { concurrency: "unbounded" }
  )
  yield* Effect.forEach(workers, (worker) => worker.waitForOutput("order worker started", Duration.seconds(90)), {
    concurrency: "unbounded",
    discard: true
  })
  yield* progress(`${workers.length} worker process(es) started (pids ${workers.map((worker) => worker.pid).join(", ")})`)
  const everyProcess = [server, ...workers]
  const rssByPhase = [rssSnapshot("setup", everyProcess)]

  // Warm-up: JIT, connection pools and caches of the workers, so the measured batch is steady state.
  const warmup = yield* assignBatch(sql, world, "warm", settings.throughput.warmupOrders, 1)
  yield* progress(`warm-up: ${warmup.settlement.assigned}/${warmup.orders} assigned in ${fixed(warmup.elapsedMs / 1000, 2)} s`)
  const throughput = yield* assignBatch(sql, world, "batch", settings.throughput.orders, 2)
  rssByPhase.push(rssSnapshot("assignment", everyProcess))
  yield* progress(`assignment: ${fixed(throughput.ordersPerSecond)} orders/s (${throughput.settlement.assigned}/${throughput.orders} assigned in ${fixed(throughput.elapsedMs / 1000, 2)} s, ${throughput.settlement.retries} retried attempts)`)

  const loadClient = yield* Effect.acquireRelease(
    Effect.sync(() => makeJsonClient(server.baseUrl, settings.intake.concurrency)),
    (client) => Effect.sync(client.close)
  )
  yield* progress(`latency: ${settings.latency.ratePerSecond} orders/s through the API for ${settings.latency.durationSeconds} s`)
  const latency = yield* insertToAssignedLatency(sql, loadClient, world)
  yield* progress(`latency: p50 ${fixed(latency.p50Ms)} ms, p95 ${fixed(latency.p95Ms)} ms, p99 ${fixed(latency.p99Ms)} ms`)
  const metricsAfterLatency = yield* serverMetricsMemory(server)
  rssByPhase.push(rssSnapshot("latency", everyProcess))

  // Intake is measured on `serve` alone: the workers would compete for the same cores and connections.
  const workerPeaks = yield* Effect.forEach(workers, (worker) =>
    Effect.gen(function*() {
      const peak = yield* worker.rssPeakBytes
      const how = yield* worker.stop("SIGTERM", Duration.seconds(30))
      yield* progress(`${worker.name} stopped (${how})`)
      return [worker.name, peak] as const
    }))

  yield* progress(`intake: ${settings.intake.concurrency} clients for ${settings.intake.durationSeconds} s against serve only`)
  const intake = yield* intakeThroughput(loadClient, world)
  yield* progress(`intake: ${fixed(intake.requestsPerSecond)} req/s, p50 ${fixed(intake.latencyMs.p50, 2)} ms, p99 ${fixed(intake.latencyMs.p99, 2)} ms, ${intake.errors} errors`)
  const metricsAfterIntake = yield* serverMetricsMemory(server)
  rssByPhase.push(rssSnapshot("intake", everyProcess))
  const serverPeak = yield* server.rssPeakBytes

  const [postgres] = yield* sql<{ version: string; settings: string }>`SELECT version() AS version,
    concat_ws(', ', 'shared_buffers ' || current_setting('shared_buffers'), 'synchronous_commit ' || current_setting('synchronous_commit'),
      'fsync ' || current_setting('fsync'), 'max_connections ' || current_setting('max_connections')) AS settings`

  const results: Results = {
    machine,
    loadAverageAfter: loadAverage(),
    postgres: postgres ?? { version: "unknown", settings: "unknown" },
    world,
    pgbench,
    warmup,
    throughput,
    latency,
    intake,
    memory: { peakRss: [["server", serverPeak], ...workerPeaks], metricsAfterLatency, metricsAfterIntake, rssByPhase }
  }
  const markdown = renderResults(results)
  writeFileSync(resultsPath, markdown)
  yield* Console.log(`\n${markdownTable(["Benchmark", "Result", "Conditions"], summaryRows(results))}\n`)
  yield* progress(`written to ${resultsPath}; stopping processes and dropping ${database.name}`)
})

NodeRuntime.runMain(
  run.pipe(
    Effect.scoped,
    Effect.timeoutFail({
      duration: Duration.seconds(settings.runTimeoutSeconds),
      onTimeout: () => new Error(`benchmark exceeded ${settings.runTimeoutSeconds} s`)
    }),
    Effect.tapErrorCause((cause) => Console.error("benchmark failed", cause))
  )
)
