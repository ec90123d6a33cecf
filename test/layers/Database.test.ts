import { SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Redacted } from "effect"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Conflict, ValidationError } from "../../src/domain/Errors.js"
import { embeddedLayer, pgLayer } from "../../src/layers/Database.js"
import { migrationsDirectory, runMigrations } from "../../src/layers/Migrations.js"
import { atomic, mapConstraintErrors } from "../../src/services/Atomic.js"
import { createScratchDatabase, TestDatabaseLive } from "../support/TestDatabase.js"

const countUsers = (email: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ count: number }>`SELECT count(*)::int AS count FROM users WHERE email = ${email}`.pipe(
      Effect.map((rows) => rows[0]!.count)
    ))

const insertUser = (email: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`INSERT INTO users (email, password_hash, role) VALUES (${email}, 'x', 'admin')`)

describe("migrations", () => {
  it.scoped("two processes migrating one empty database at once both succeed, once", () =>
    Effect.gen(function*() {
      const { url } = yield* createScratchDatabase
      // Two independent pools stand in for two processes starting together.
      const migrateWithOwnPool = runMigrations().pipe(Effect.provide(pgLayer(Redacted.make(url), 2)))
      const [first, second] = yield* Effect.all([migrateWithOwnPool, migrateWithOwnPool], { concurrency: 2 })
      expect(first.length + second.length).toBe(readdirSync(migrationsDirectory).filter((file) => file.endsWith(".sql")).length)
      expect(Math.min(first.length, second.length)).toBe(0)
      const again = yield* migrateWithOwnPool
      expect(again).toEqual([])
      const tables = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ tableName: string }>`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
        .pipe(Effect.provide(pgLayer(Redacted.make(url), 1)))
      const names = tables.map((row) => row.tableName)
      for (const table of ["users", "incoming_orders", "order_history", "balance_stores", "merchant_callbacks"]) {
        expect(names).toContain(table)
      }
    }))
})

layer(TestDatabaseLive(), { excludeTestServices: true })("atomic", (it) => {
  {
    it.effect("commits on success", () =>
      Effect.gen(function*() {
        yield* atomic("test.commit", insertUser("commit@example.com"))
        expect(yield* countUsers("commit@example.com")).toBe(1)
      }))

    it.effect("rolls back on failure", () =>
      Effect.gen(function*() {
        const exit = yield* atomic(
          "test.rollback",
          Effect.zipRight(insertUser("rollback@example.com"), Effect.fail("boom" as const))
        ).pipe(Effect.exit)
        expect(Exit.isFailure(exit)).toBe(true)
        expect(yield* countUsers("rollback@example.com")).toBe(0)
      }))

    // The layer excludes test services, so `it.effect` runs on the live clock here.
    it.effect("rolls back on interruption", () =>
      Effect.gen(function*() {
        const inserted = yield* Deferred.make<void>()
        const fiber = yield* atomic(
          "test.interrupt",
          insertUser("interrupt@example.com").pipe(
            Effect.zipRight(Deferred.succeed(inserted, undefined)),
            Effect.zipRight(Effect.never)
          )
        ).pipe(Effect.fork)
        yield* Deferred.await(inserted).pipe(Effect.timeout("5 seconds"))
        yield* Fiber.interrupt(fiber).pipe(Effect.timeout("5 seconds"))
        expect(yield* countUsers("interrupt@example.com")).toBe(0)
      }))

    it.effect("maps a unique violation to Conflict and a foreign-key violation to ValidationError", () =>
      Effect.gen(function*() {
        yield* insertUser("dup@example.com")
        const duplicate = yield* insertUser("DUP@example.com").pipe(mapConstraintErrors("user"), Effect.flip)
        expect(duplicate).toBeInstanceOf(Conflict)
        const dangling = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql`INSERT INTO merchants (user_id, name) VALUES (999999, 'ghost')`).pipe(
            mapConstraintErrors("merchant"),
            Effect.flip
          )
        expect(dangling).toBeInstanceOf(ValidationError)
      }))
  }
})

describe("embedded PGlite", () => {
  it.live("migrates, serves queries through PgClient and keeps data across a restart", () =>
    Effect.gen(function*() {
      const dataDir = mkdtempSync(join(tmpdir(), "jivapay-pglite-"))
      const withEmbedded = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
        Effect.provide(effect, embeddedLayer(dataDir))
      try {
        yield* withEmbedded(Effect.zipRight(runMigrations(), insertUser("persist@example.com")))
        const count = yield* withEmbedded(Effect.zipRight(runMigrations(), countUsers("persist@example.com")))
        expect(count).toBe(1)
      } finally {
        rmSync(dataDir, { recursive: true, force: true })
      }
    }), 120_000)
})
