import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Context, Duration, Effect, Layer, Option, Redacted, Schedule, String as Str } from "effect"
import { mkdirSync } from "node:fs"
import { join, resolve } from "node:path"
import pg from "pg"
import { AppConfig } from "./Config.js"

/** Embedded PGlite serves one connection; real PostgreSQL gets a pool and LISTEN/NOTIFY. */
export class DatabaseMode extends Context.Tag("DatabaseMode")<DatabaseMode, { readonly embedded: boolean }>() {}

const INT8_OID = 20

/**
 * Ids are bigint columns that stay far below 2^53, so they are read as numbers.
 * NUMERIC stays a string on purpose: money is decoded by Schema into BigDecimal, never a float.
 */
const pgTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format as "text")) as pg.CustomTypesConfig["getTypeParser"]
}

const sharedOptions = {
  transformResultNames: Str.snakeToCamel,
  transformQueryNames: Str.camelToSnake,
  types: pgTypes,
  applicationName: "jivapay"
} as const

/** Retry the first connection: PostgreSQL may still be starting when the service does. */
const initialConnectRetry = Schedule.exponential(Duration.millis(200), 2).pipe(
  Schedule.union(Schedule.spaced(Duration.seconds(5))),
  Schedule.intersect(Schedule.recurs(8))
)

export const pgLayer = (url: Redacted.Redacted, maxConnections: number) =>
  Layer.mergeAll(
    PgClient.layer({ url, maxConnections, connectTimeout: Duration.seconds(5), ...sharedOptions }),
    Layer.succeed(DatabaseMode, { embedded: false })
  ).pipe(Layer.retry(initialConnectRetry))

/** PGlite in this process, served on a loopback port so the same PgClient talks to it. */
const startEmbedded = (dataDir: string) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const directory = resolve(dataDir, "pgdata")
        mkdirSync(directory, { recursive: true })
        const db = await PGlite.create(directory)
        const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 4 })
        await server.start()
        return { db, server, address: server.getServerConn() }
      },
      catch: (cause) => new Error(`embedded PGlite failed to start under ${dataDir}: ${String(cause)}`)
    }).pipe(Effect.orDie),
    ({ db, server }) => Effect.promise(() => server.stop().then(() => db.close()))
  )

export const embeddedLayer = (dataDir: string) =>
  Layer.unwrapScoped(
    Effect.gen(function*() {
      const { address } = yield* startEmbedded(dataDir)
      yield* Effect.logInfo(`embedded PostgreSQL (PGlite) at ${address}, data in ${join(dataDir, "pgdata")}`)
      const url = Redacted.make(`postgres://postgres@${address}/postgres?sslmode=disable`)
      return Layer.mergeAll(
        // One connection: PGlite runs one transaction at a time; a second pooled connection would deadlock.
        PgClient.layer({ url, maxConnections: 1, minConnections: 1, ...sharedOptions }),
        Layer.succeed(DatabaseMode, { embedded: true })
      )
    })
  )

/** DATABASE_URL → a pool on real PostgreSQL; unset → embedded PGlite under DATA_DIR. */
export const DatabaseLive: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient | DatabaseMode, unknown, AppConfig> =
  Layer.unwrapEffect(
    Effect.map(AppConfig, (config) =>
      Option.match(config.databaseUrl, {
        onNone: () => embeddedLayer(config.dataDir),
        onSome: (url) => pgLayer(url, config.databaseMaxConnections)
      })
    )
  )
