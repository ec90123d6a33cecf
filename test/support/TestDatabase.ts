import { Effect, Layer, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import pg from "pg"
import { DatabaseMode, pgLayer } from "../../src/layers/Database.js"
import { runMigrations } from "../../src/layers/Migrations.js"
import { adminDatabaseUrl, databaseUrlFor } from "./env.js"

const adminQuery = async (text: string) => {
  const client = new pg.Client({ connectionString: adminDatabaseUrl })
  await client.connect()
  try {
    await client.query(text)
  } finally {
    await client.end()
  }
}

/** A fresh, empty database on the real server, dropped when the scope closes. */
export const createScratchDatabase = Effect.acquireRelease(
  Effect.promise(async () => {
    const name = `jivapay_t_${randomBytes(6).toString("hex")}`
    await adminQuery(`CREATE DATABASE ${name}`)
    return { name, url: databaseUrlFor(name) }
  }),
  ({ name }) => Effect.promise(() => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined))
)

/** A migrated scratch database with a PgClient pool on it. */
export const TestDatabaseLive = (options: { readonly maxConnections?: number; readonly migrate?: boolean } = {}) =>
  Layer.unwrapScoped(
    Effect.map(createScratchDatabase, ({ url }) => {
      const client = pgLayer(Redacted.make(url), options.maxConnections ?? 10)
      return options.migrate === false
        ? client
        : Layer.provideMerge(Layer.effectDiscard(runMigrations()), client)
    })
  ) satisfies Layer.Layer<DatabaseMode | any, any, never>
