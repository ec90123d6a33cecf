import { PgClient } from "@effect/sql-pg"
import { Context, Duration, Effect, Layer, Redacted, String as Str } from "effect"
import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"

/**
 * The benchmark's own database access: a scratch database on the local PostgreSQL (created per run,
 * dropped with FORCE when the scope closes, pass or fail) and `pgbench` against it.
 */

/** Where the scratch database is created; the server's maintenance database by default. */
export const adminDatabaseUrl = process.env.BENCH_ADMIN_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

export const databaseUrlFor = (database: string) => {
  const url = new URL(adminDatabaseUrl)
  url.pathname = `/${database}`
  return url.toString()
}

/** A small pool whose lifetime is the caller's scope; rows come back camelCased like the app's. */
export const openPool = (url: string, maxConnections: number) =>
  Effect.map(
    Layer.build(PgClient.layer({
      url: Redacted.make(url),
      maxConnections,
      connectTimeout: Duration.seconds(5),
      transformResultNames: Str.snakeToCamel,
      transformQueryNames: Str.camelToSnake,
      applicationName: "jivapay-bench"
    })),
    (context) => Context.get(context, PgClient.PgClient)
  )

export interface ScratchDatabase {
  readonly name: string
  readonly url: string
}

/** A fresh, empty database; the admin connection that made it drops it when the scope closes. */
export const scratchDatabase = Effect.gen(function*() {
  const admin = yield* openPool(adminDatabaseUrl, 1)
  const name = `jivapay_bench_${randomBytes(5).toString("hex")}`
  return yield* Effect.acquireRelease(
    Effect.as(admin`CREATE DATABASE ${admin(name)}`, { name, url: databaseUrlFor(name) } satisfies ScratchDatabase),
    () =>
      admin`DROP DATABASE IF EXISTS ${admin(name)} WITH (FORCE)`.pipe(
        Effect.tapError((error) => Effect.logWarning(`scratch database ${name} not dropped`, error.message)),
        Effect.ignore
      )
  )
})

export interface CommandResult {
  readonly exitCode: number | null
  readonly stdout: string
  readonly stderr: string
}

// Output kept per command: pgbench prints a few hundred lines at most; anything beyond is noise.
const commandOutputCharsMax = 200_000

/** Runs a program to completion; it is killed on interruption and after `timeout`. */
export const runCommand = (file: string, args: ReadonlyArray<string>, timeout: Duration.DurationInput) =>
  Effect.async<CommandResult, Error>((resume) => {
    const child = spawn(file, [...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PGAPPNAME: "jivapay-bench" } })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout = (stdout + chunk.toString("utf8")).slice(-commandOutputCharsMax)))
    child.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString("utf8")).slice(-commandOutputCharsMax)))
    const timer = setTimeout(() => child.kill("SIGKILL"), Duration.toMillis(Duration.decode(timeout)))
    child.once("error", (error) => {
      clearTimeout(timer)
      resume(Effect.fail(new Error(`${file} could not be started: ${error.message}`)))
    })
    child.once("close", (exitCode) => {
      clearTimeout(timer)
      resume(Effect.succeed({ exitCode, stdout, stderr }))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      child.kill("SIGKILL")
    })
  })

const expectSuccess = (what: string) => (result: CommandResult) =>
  result.exitCode === 0
    ? Effect.succeed(result)
    : Effect.fail(new Error(`${what} exited with ${result.exitCode}:\n${result.stderr.slice(-2_000)}`))

export interface PgbenchSettings {
  readonly scale: number
  readonly clients: number
  readonly threads: number
  readonly durationSeconds: number
}

export interface PgbenchResult extends PgbenchSettings {
  readonly tps: number
  readonly latencyAverageMs: number
  readonly transactions: number
}

/** The numbers of pgbench's report; a report without them is an error, never a zero. */
export const parsePgbenchOutput = (output: string) => {
  const tps = /^tps = ([0-9.]+) \(without initial connection time\)/m.exec(output)
  const latency = /^latency average = ([0-9.]+) ms/m.exec(output)
  const transactions = /^number of transactions actually processed: (\d+)/m.exec(output)
  if (tps === null || latency === null || transactions === null) {
    return Effect.fail(new Error(`pgbench output not understood:\n${output.slice(-2_000)}`))
  }
  return Effect.succeed({
    tps: Number(tps[1]),
    latencyAverageMs: Number(latency[1]),
    transactions: Number(transactions[1])
  })
}

/**
 * TPC-B (pgbench's built-in script) into the scratch database: initialize, run, then drop its tables
 * so the application's schema starts from an empty database. The URL is passed as the database name,
 * which pgbench expands like any libpq connection string.
 */
export const runPgbench = (url: string, settings: PgbenchSettings) =>
  Effect.gen(function*() {
    yield* runCommand("pgbench", ["-i", "-q", "-s", String(settings.scale), url], Duration.seconds(120)).pipe(
      Effect.flatMap(expectSuccess("pgbench -i"))
    )
    const run = yield* runCommand(
      "pgbench",
      ["-c", String(settings.clients), "-j", String(settings.threads), "-T", String(settings.durationSeconds), url],
      Duration.seconds(settings.durationSeconds + 60)
    ).pipe(Effect.flatMap(expectSuccess("pgbench")))
    const parsed = yield* parsePgbenchOutput(run.stdout)
    // Init step "d" only drops pgbench's tables.
    yield* runCommand("pgbench", ["-i", "-I", "d", url], Duration.seconds(60)).pipe(
      Effect.flatMap(expectSuccess("pgbench -i -I d"))
    )
    return { ...settings, ...parsed } satisfies PgbenchResult
  })
