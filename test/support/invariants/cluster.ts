import { Duration, Effect } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort, type JivaPayProcess, spawnJivaPay, stopProcess, waitForHealth } from "../processes.js"

/**
 * Real `src/main.ts` processes sharing one scratch database, and a small HTTP client for them that
 * never throws on 4xx/5xx and sends receipts as multipart forms the way a browser would.
 */

export const CLUSTER_ADMIN_EMAIL = "admin@invariants.jivapay.test"
export const CLUSTER_ADMIN_PASSWORD = "invariants-admin-password"
export const CLUSTER_PASSWORD = "invariants-password-1"

/** Per child: PostgreSQL allows 100 connections for every suite running at once. */
const CHILD_CONNECTIONS_MAX = 6

/** The environment of one child: its own data folder, quiet logs, quick retries, small pool. */
export const childEnv = (databaseUrl: string, overrides: Record<string, string> = {}): Record<string, string> => ({
  DATABASE_URL: databaseUrl,
  DATABASE_MAX_CONNECTIONS: String(CHILD_CONNECTIONS_MAX),
  DATA_DIR: mkdtempSync(join(tmpdir(), "jivapay-invariants-")),
  SEED_DEMO: "false",
  ADMIN_EMAIL: CLUSTER_ADMIN_EMAIL,
  ADMIN_PASSWORD: CLUSTER_ADMIN_PASSWORD,
  LOG_LEVEL: "error",
  WORKER_CONCURRENCY: "4",
  WORKER_BATCH_SIZE: "32",
  WORKER_POLL_INTERVAL: "200 millis",
  WORKER_CLAIM_LEASE: "5 seconds",
  ORDER_MAX_RETRIES: "20",
  ORDER_RETRY_BASE_DELAY: "200 millis",
  ORDER_RETRY_MAX_DELAY: "1 seconds",
  ...overrides
})

/** A child process that is SIGKILLed when the scope closes, whatever happened. */
export const spawnNode = (command: "start" | "serve" | "worker", env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.promise(async () => spawnJivaPay({ command, port: await freePort(), env })),
    (proc) => Effect.promise(() => stopProcess(proc, "SIGKILL", 5_000))
  )

export const awaitHealthy = (proc: JivaPayProcess, timeout: Duration.DurationInput = Duration.seconds(90)) =>
  Effect.promise(() => waitForHealth(proc, Duration.toMillis(timeout)))

export interface HttpResult {
  readonly status: number
  readonly body: any
  readonly text: string
}

export interface HttpOptions {
  readonly json?: unknown
  readonly token?: string
  readonly apiKey?: string
  /** Built per request: a FormData body cannot be sent twice. */
  readonly form?: () => FormData
  readonly timeoutMs?: number
}

/** One request. A refused connection (a killed process) is status 0, not an exception. */
export const http = async (baseUrl: string, method: string, path: string, options: HttpOptions = {}): Promise<HttpResult> => {
  const headers: Record<string, string> = {}
  if (options.json !== undefined) headers["content-type"] = "application/json"
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
  if (options.apiKey !== undefined) headers["x-api-key"] = options.apiKey
  const body = options.form !== undefined ? options.form() : options.json !== undefined ? JSON.stringify(options.json) : undefined
  try {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers,
      signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
      ...(body === undefined ? {} : { body })
    })
    const text = await response.text()
    let parsed: any = undefined
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined
    } catch {
      parsed = undefined
    }
    return { status: response.status, body: parsed, text }
  } catch (error) {
    return { status: 0, body: undefined, text: String(error) }
  }
}

/** Fails loudly with the response when the status is not the expected one. */
export const expectStatus = (result: HttpResult, status: number, what: string): HttpResult => {
  if (result.status !== status) throw new Error(`${what}: expected ${status}, got ${result.status}: ${result.text.slice(0, 500)}`)
  return result
}

const pngBytes = () => {
  const bytes = new Uint8Array(128)
  bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
  return bytes
}

/** A multipart form with one small PNG in the field `receipt`. */
export const receiptForm = () => {
  const form = new FormData()
  form.append("receipt", new Blob([pngBytes()], { type: "image/png" }), "receipt.png")
  return form
}

export const login = async (baseUrl: string, email: string, password: string) =>
  expectStatus(await http(baseUrl, "POST", "/api/auth/login", { json: { email, password } }), 200, `login ${email}`).body
    .token as string

/** Runs `task` over `items` with at most `concurrency` in flight; results in input order. */
export const mapBounded = async <A, B>(items: ReadonlyArray<A>, concurrency: number, task: (item: A, index: number) => Promise<B>) => {
  const results: Array<B> = new Array(items.length)
  let next = 0
  const lanes = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await task(items[index]!, index)
    }
  })
  await Promise.all(lanes)
  return results
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
