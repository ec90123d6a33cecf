import { expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import pg from "pg"
import {
  callJson,
  freePort,
  type JivaPayProcess,
  killAll,
  projectRoot,
  spawnJivaPay,
  stopProcess,
  waitForHealth
} from "../support/processes.js"
import { createScratchDatabase } from "../support/TestDatabase.js"
import { testRedisUrl } from "../support/env.js"

/**
 * Start-up as an operator sees it: real `node src/main.ts` processes, real PostgreSQL, Redis and the
 * embedded PGlite, real signals. Every child is killed in a finalizer, whatever the outcome.
 */

const ADMIN_EMAIL = "ops@startup.test"
const ADMIN_PASSWORD = "startup-admin-password"
const TEST_TIMEOUT_MS = 240_000
// Other suites share the PostgreSQL server (max_connections 100): these idle processes need few.
const DATABASE_MAX_CONNECTIONS = "4"

const migrationFiles = readdirSync(join(projectRoot, "sql")).filter((file) => /^\d{4}_[a-z0-9_]+\.sql$/.test(file))

/** The children of one test, killed (SIGKILL) when the test's scope closes. */
const trackedProcesses = Effect.acquireRelease(
  Effect.sync(() => [] as Array<JivaPayProcess>),
  (processes) => Effect.promise(() => killAll(processes))
)

const query = async <Row>(url: string, text: string): Promise<Array<Row>> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query(text)).rows as Array<Row>
  } finally {
    await client.end()
  }
}

const login = async (proc: JivaPayProcess) => {
  const response = await callJson(proc, "POST", "/api/auth/login", { body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } })
  expect(response.status, response.text).toBe(200)
  expect(response.body.role).toBe("admin")
  return response.body.token as string
}

const occurrences = (text: string, needle: string) => text.split(needle).length - 1

it.scopedLive("two `start` processes on one empty database both come up; migrations and seed run once", () =>
  Effect.gen(function*() {
    const database = yield* createScratchDatabase
    const processes = yield* trackedProcesses
    yield* Effect.promise(async () => {
      const [portA, portB] = [await freePort(), await freePort()]
      const env = { DATABASE_URL: database.url, DATABASE_MAX_CONNECTIONS, ADMIN_EMAIL, ADMIN_PASSWORD, LOG_LEVEL: "info" }
      processes.push(spawnJivaPay({ port: portA, env }), spawnJivaPay({ port: portB, env }))
      await Promise.all(processes.map((proc) => waitForHealth(proc)))

      for (const proc of processes) {
        expect((await callJson(proc, "GET", "/ready")).status).toBe(200)
        await login(proc)
      }

      const applied = await query<{ migrationId: number }>(database.url, "SELECT migration_id AS \"migrationId\" FROM effect_sql_migrations")
      expect(applied).toHaveLength(migrationFiles.length)
      const [counts] = await query<Record<string, number>>(
        database.url,
        `SELECT (SELECT count(*) FROM users WHERE role = 'admin')::int AS admins,
                (SELECT count(*) FROM users WHERE lower(email) = lower('${ADMIN_EMAIL}'))::int AS "adminByEmail",
                (SELECT count(*) FROM merchants)::int AS merchants,
                (SELECT count(*) FROM merchant_stores)::int AS stores,
                (SELECT count(*) FROM fiat_currencies WHERE code = 'RUB')::int AS rub`
      )
      expect(counts).toEqual({ admins: 1, adminByEmail: 1, merchants: 1, stores: 1, rub: 1 })

      const outputs = processes.map((proc) => proc.output())
      const combined = outputs.join("\n")
      // Each migration was applied by exactly one of the two processes.
      for (const file of migrationFiles) {
        const name = file.replace(/^(\d{4})_/, (_, id: string) => `${Number(id)}_`).replace(/\.sql$/, "")
        expect(occurrences(combined, `migration applied: ${name}`), name).toBe(1)
      }
      // One of them seeded the demo tenants and printed their credentials; the other found them.
      expect(outputs.filter((output) => output.includes("demo merchant:"))).toHaveLength(1)
      for (const output of outputs) expect(output).toContain(`admin: ${ADMIN_EMAIL}`)
      // ADMIN_PASSWORD was given: it is not echoed.
      expect(combined).not.toContain(ADMIN_PASSWORD)

      for (const proc of processes) expect(await stopProcess(proc, "SIGTERM")).toBe(0)
    })
  }), TEST_TIMEOUT_MS)

it.scopedLive("embedded mode (no DATABASE_URL): data survives a graceful restart under the same DATA_DIR", () =>
  Effect.gen(function*() {
    const dataDir = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "jivapay-embedded-"))),
      (directory) => Effect.sync(() => rmSync(directory, { recursive: true, force: true }))
    )
    const processes = yield* trackedProcesses
    yield* Effect.promise(async () => {
      const env = { DATA_DIR: dataDir, ADMIN_EMAIL, ADMIN_PASSWORD }
      const merchantEmail = "survivor@startup.test"

      const first = spawnJivaPay({ port: await freePort(), env })
      processes.push(first)
      await waitForHealth(first)
      expect(first.output()).toContain("demo merchant:")
      const ready = await callJson(first, "GET", "/ready")
      expect(ready.status).toBe(200)
      expect(ready.body).toEqual({ status: "ready", database: "ok", keyValue: "ok" })
      const created = await callJson(first, "POST", "/api/admin/merchants", {
        token: await login(first),
        body: { email: merchantEmail, password: "survivor-password", name: "Survivor" }
      })
      expect(created.status, created.text).toBe(201)

      // SIGTERM: the server stops, PGlite is closed cleanly, the exit code is 0.
      expect(await stopProcess(first, "SIGTERM"), first.output()).toBe(0)

      const second = spawnJivaPay({ port: await freePort(), env })
      processes.push(second)
      await waitForHealth(second)
      // Nothing is seeded twice: the demo credentials are printed only on the first start.
      expect(second.output()).not.toContain("demo merchant:")
      const token = await login(second)
      const again = await callJson(second, "POST", "/api/admin/merchants", {
        token,
        body: { email: merchantEmail, password: "survivor-password", name: "Survivor" }
      })
      expect(again.status, again.text).toBe(409)
      expect(again.body._tag).toBe("Conflict")
      const merchantLogin = await callJson(second, "POST", "/api/auth/login", {
        body: { email: merchantEmail, password: "survivor-password" }
      })
      expect(merchantLogin.status).toBe(200)
      expect(merchantLogin.body.role).toBe("merchant")

      expect(await stopProcess(second, "SIGTERM"), second.output()).toBe(0)
    })
  }), TEST_TIMEOUT_MS)

it.scopedLive("with DATABASE_URL and REDIS_URL /ready says ready; with Redis unreachable it says 503", () =>
  Effect.gen(function*() {
    const database = yield* createScratchDatabase
    const processes = yield* trackedProcesses
    yield* Effect.promise(async () => {
      const base = { DATABASE_URL: database.url, DATABASE_MAX_CONNECTIONS, ADMIN_EMAIL, ADMIN_PASSWORD, SEED_DEMO: "false" }

      const healthy = spawnJivaPay({ port: await freePort(), env: { ...base, REDIS_URL: testRedisUrl } })
      processes.push(healthy)
      await waitForHealth(healthy)
      const ready = await callJson(healthy, "GET", "/ready")
      expect(ready.status, ready.text).toBe(200)
      expect(ready.body).toEqual({ status: "ready", database: "ok", keyValue: "ok" })
      // SEED_DEMO=false: only the admin.
      expect(healthy.output()).not.toContain("demo merchant:")
      const [{ merchants }] = await query<{ merchants: number }>(database.url, "SELECT count(*)::int AS merchants FROM merchants") as [
        { merchants: number }
      ]
      expect(merchants).toBe(0)

      // Nothing listens on this port: the process still serves, but is not ready.
      const deadRedis = `redis://127.0.0.1:${await freePort()}`
      const degraded = spawnJivaPay({ port: await freePort(), env: { ...base, REDIS_URL: deadRedis } })
      processes.push(degraded)
      await waitForHealth(degraded)
      const notReady = await callJson(degraded, "GET", "/ready")
      expect(notReady.status, notReady.text).toBe(503)
      expect(notReady.body._tag).toBe("ServiceUnavailable")
      expect(notReady.body.message).toContain("redis")

      for (const proc of processes) expect(await stopProcess(proc, "SIGTERM")).toBe(0)
    })
  }), TEST_TIMEOUT_MS)
