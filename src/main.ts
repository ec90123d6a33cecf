import { HttpServer } from "@effect/platform"
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Option } from "effect"
import { HttpAppLive, NodeServerLive } from "./http/Server.js"
import { InfraLive } from "./layers/App.js"
import { AppConfig } from "./layers/Config.js"
import { runMigrations } from "./layers/Migrations.js"
import { ErrorReporter } from "./services/ErrorReporter.js"
import { OrderStatusManager } from "./services/OrderStatusManager.js"
import { Reconciliation } from "./services/Reconciliation.js"
import { ReferenceData } from "./services/ReferenceData.js"
import type { SeedReport } from "./services/Seed.js"
import { Seed } from "./services/Seed.js"
import { OrderWorkerLive } from "./workers/OrderWorker.js"
import { RateRefresherLive } from "./workers/RateRefresher.js"
import { TimeoutWorkerLive } from "./workers/TimeoutWorker.js"

const COMMANDS = ["start", "serve", "worker", "migrate", "seed", "reconcile"] as const
type Command = typeof COMMANDS[number]

const printSeedReport = (report: SeedReport, baseUrl: string) =>
  Effect.sync(() => {
    const lines = [`JivaPay is serving at ${baseUrl}  (OpenAPI UI: ${baseUrl}/docs)`, `admin: ${report.adminEmail}`]
    if (Option.isSome(report.adminPassword)) {
      lines.push(`admin password (generated, shown once): ${report.adminPassword.value}`)
    }
    if (Option.isSome(report.demo)) {
      const demo = report.demo.value
      lines.push(
        `demo merchant: ${demo.merchantEmail}`,
        `demo traders: ${demo.traderEmails.join(", ")}`,
        `demo password (shown once): ${demo.password}`,
        `demo store: ${demo.storePublicId}`,
        `demo store API key (shown once): ${demo.apiKey}`,
        `demo store callback secret (shown once): ${demo.secretKey}`
      )
    }
    console.log(lines.join("\n"))
  })

const migrateAndSeed = Effect.gen(function*() {
  yield* runMigrations()
  return yield* Effect.flatMap(Seed, (seed) => seed.run())
}).pipe(Effect.provide(Seed.Default))

const HttpLive = HttpAppLive.pipe(Layer.provide(NodeServerLive))
const serveHttp = Layer.launch(HttpLive)
/**
 * The background workers: assignment, order timeouts and rate refresh. They stop gracefully
 * (in-flight orders finish) on SIGINT/SIGTERM.
 */
const WorkersLive = Layer.mergeAll(
  OrderWorkerLive,
  TimeoutWorkerLive.pipe(Layer.provide([OrderStatusManager.Default, ErrorReporter.Default])),
  RateRefresherLive.pipe(Layer.provide([ReferenceData.Default, ErrorReporter.Default]))
)

const baseUrl = Effect.map(AppConfig, (config) => `http://${config.host}:${config.port}`)

/** Prints the report as JSON; any difference makes the process exit non-zero (for cron and CI). */
const reconcile = Effect.gen(function*() {
  const report = yield* Effect.flatMap(Reconciliation, (service) => service.run())
  yield* Effect.sync(() => console.log(JSON.stringify(report, null, 2)))
  if (!report.ok) {
    return yield* Effect.fail(new Error(`reconciliation found ${report.differences.length} difference(s)`))
  }
}).pipe(Effect.provide(Reconciliation.Default))

const programs: Record<Command, Effect.Effect<unknown, unknown, any>> = {
  start: Effect.gen(function*() {
    const report = yield* migrateAndSeed
    yield* printSeedReport(report, yield* baseUrl)
    return yield* Layer.launch(Layer.merge(HttpLive, WorkersLive))
  }),
  serve: Effect.zipRight(runMigrations(), serveHttp),
  worker: Effect.zipRight(runMigrations(), Layer.launch(WorkersLive)),
  migrate: runMigrations(),
  seed: Effect.flatMap(migrateAndSeed, (report) => Effect.flatMap(baseUrl, (url) => printSeedReport(report, url))),
  reconcile: reconcile
}

const command = (process.argv[2] ?? "start") as Command
if (!COMMANDS.includes(command)) {
  console.error(`unknown command "${command}"; use one of: ${COMMANDS.join(", ")}`)
  process.exit(2)
}

const program = programs[command].pipe(Effect.provide(InfraLive)) as Effect.Effect<unknown, unknown, never>
// The JSON logger of TelemetryLive replaces the default one; the pretty logger would print beside it.
NodeRuntime.runMain(program, { disablePrettyLogger: true })

export type { HttpServer }
