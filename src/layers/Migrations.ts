import { Migrator, SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import { readdirSync, readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

export const migrationsDirectory = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "sql")

/** An arbitrary constant: every JivaPay process takes this advisory lock before migrating. */
const MIGRATION_LOCK_KEY = 7_349_221_001

const MIGRATION_FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/

const migrator = Migrator.make({})

/**
 * Runs pending migrations once, even when several processes start together on an empty database:
 * the transaction-scoped advisory lock serializes them, and the migrator's own transaction nests
 * inside as a savepoint, so the lock is held until everything is committed.
 */
export const runMigrations = Effect.fn("Migrations.run")(function*(directory: string = migrationsDirectory) {
  const sql = yield* SqlClient.SqlClient
  const files = readdirSync(directory).filter((file) => MIGRATION_FILE.test(file)).sort()
  const record: Record<string, Effect.Effect<unknown, unknown, SqlClient.SqlClient>> = {}
  for (const file of files) {
    const [, id, name] = MIGRATION_FILE.exec(file)!
    record[`${Number(id)}_${name}`] = sql.unsafe(readFileSync(join(directory, file), "utf8"))
  }
  const applied = yield* sql.withTransaction(
    Effect.gen(function*() {
      yield* sql`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`
      // Created here, under the lock: the migrator's own probe for the table would abort our transaction.
      yield* sql`CREATE TABLE IF NOT EXISTS effect_sql_migrations (
        migration_id integer PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT now(),
        name text NOT NULL
      )`
      return yield* migrator({ loader: Migrator.fromRecord(record) })
    })
  )
  for (const [id, name] of applied) yield* Effect.logInfo(`migration applied: ${id}_${name}`)
  return applied
})

export const MigrationsLive = Layer.effectDiscard(runMigrations())
