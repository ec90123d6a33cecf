import { HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Layer } from "effect"
import { mkdtempSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { HttpAppLive } from "../../src/http/Server.js"
import { AppConfig, type AppSettings } from "../../src/layers/Config.js"
import { KeyValue } from "../../src/layers/KeyValue.js"
import { ObjectStore } from "../../src/layers/ObjectStore.js"
import { OrderWakeup } from "../../src/layers/OrderWakeup.js"
import { AdminService } from "../../src/services/AdminService.js"
import { TestDatabaseLive } from "./TestDatabase.js"

export const TEST_ADMIN_EMAIL = "admin@test.jivapay.local"
export const TEST_ADMIN_PASSWORD = "admin-password-for-tests"

export class TestServer extends Context.Tag("TestServer")<TestServer, { readonly baseUrl: string }>() {}

const serverAddress = Effect.map(HttpServer.HttpServer, (server) => {
  const address = server.address
  if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  return { baseUrl: `http://127.0.0.1:${address.port}` }
})

/**
 * The whole HTTP application on a fresh migrated database of the real PostgreSQL, a loopback port,
 * in-memory key-value store (or Redis when asked) and a temporary object folder; an admin exists.
 */
export const TestAppLive = (options: {
  readonly settings?: Partial<AppSettings>
  readonly redisUrl?: string
  readonly maxConnections?: number
} = {}) => {
  const dataDir = mkdtempSync(join(tmpdir(), "jivapay-test-"))
  const config = AppConfig.layerWith({ dataDir, port: 0, ...options.settings })
  const keyValue = options.redisUrl === undefined
    ? KeyValue.layerMemory
    : KeyValue.layerRedis(options.redisUrl, { keyPrefix: `jivapay-test-${Date.now()}-${Math.random()}:` })
  const infra = Layer.mergeAll(OrderWakeup.layer, keyValue, ObjectStore.layerLocal(join(dataDir, "objects"))).pipe(
    Layer.provideMerge(TestDatabaseLive({ maxConnections: options.maxConnections ?? 10 })),
    Layer.provideMerge(config)
  )
  const admin = Layer.effectDiscard(
    Effect.flatMap(AdminService, (service) => service.ensureAdmin(TEST_ADMIN_EMAIL, TEST_ADMIN_PASSWORD))
  ).pipe(Layer.provide(AdminService.Default))
  const server = HttpAppLive.pipe(Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })))
  return Layer.effect(TestServer, serverAddress).pipe(
    Layer.provideMerge(server),
    Layer.provideMerge(admin),
    Layer.provideMerge(infra)
  )
}

/** A tiny JSON client for the tests: returns status and parsed body, never throws on 4xx/5xx. */
export const request = (
  method: string,
  path: string,
  options: { readonly body?: unknown; readonly token?: string; readonly apiKey?: string; readonly headers?: Record<string, string>; readonly rawBody?: string | Uint8Array | FormData } = {}
) =>
  Effect.flatMap(TestServer, ({ baseUrl }) =>
    Effect.promise(async () => {
      const headers: Record<string, string> = { ...options.headers }
      if (options.body !== undefined) headers["content-type"] = "application/json"
      if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
      if (options.apiKey !== undefined) headers["x-api-key"] = options.apiKey
      const response = await fetch(`${baseUrl}${path}`, {
        method,
        headers,
        ...bodyInit(options)
      } as RequestInit)
      const text = await response.text()
      let json: any = undefined
      try {
        json = text.length > 0 ? JSON.parse(text) : undefined
      } catch {
        json = undefined
      }
      return { status: response.status, body: json, text, headers: response.headers }
    }))

const bodyInit = (options: { readonly body?: unknown; readonly rawBody?: unknown }) =>
  options.rawBody !== undefined
    ? { body: options.rawBody }
    : options.body === undefined
    ? {}
    : { body: JSON.stringify(options.body) }

export const loginAs = (email: string, password: string) =>
  Effect.map(request("POST", "/api/auth/login", { body: { email, password } }), (response) => {
    if (response.status !== 200) throw new Error(`login failed for ${email}: ${response.status} ${response.text}`)
    return response.body.token as string
  })

export const adminToken = loginAs(TEST_ADMIN_EMAIL, TEST_ADMIN_PASSWORD)

