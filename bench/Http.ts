import { Data, Effect } from "effect"
import { Agent, request as httpRequest } from "node:http"
import { performance } from "node:perf_hooks"

/**
 * A small JSON client over node:http with keep-alive: the load generator's connections are reused
 * (as a merchant's HTTP client would), and their number is bounded by `maxSockets`.
 */

export class HttpFailure extends Data.TaggedError("HttpFailure")<{ readonly message: string }> {}

export interface JsonResponse {
  readonly status: number
  readonly body: any
  readonly latencyMs: number
}

// A response body the benchmark reads is a few hundred bytes; more means something is wrong.
const responseBytesMax = 1024 * 1024
const requestTimeoutMs = 15_000

export interface JsonClient {
  readonly request: (
    method: string,
    path: string,
    options?: { readonly body?: unknown; readonly headers?: Record<string, string> }
  ) => Promise<JsonResponse>
  readonly close: () => void
}

export const makeJsonClient = (baseUrl: string, maxSockets: number): JsonClient => {
  const agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets })
  const origin = new URL(baseUrl)
  const request: JsonClient["request"] = (method, path, options = {}) =>
    new Promise((resolve, reject) => {
      const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body))
      const startedAt = performance.now()
      const req = httpRequest({
        agent,
        host: origin.hostname,
        port: origin.port,
        method,
        path,
        timeout: requestTimeoutMs,
        headers: {
          accept: "application/json",
          ...(payload === undefined ? {} : { "content-type": "application/json", "content-length": payload.length }),
          ...options.headers
        }
      }, (res) => {
        const chunks: Array<Buffer> = []
        let size = 0
        res.on("data", (chunk: Buffer) => {
          size += chunk.length
          if (size > responseBytesMax) res.destroy(new Error(`response larger than ${responseBytesMax} bytes`))
          else chunks.push(chunk)
        })
        res.on("error", reject)
        res.on("end", () => {
          const latencyMs = performance.now() - startedAt
          const text = Buffer.concat(chunks).toString("utf8")
          let body: unknown = undefined
          try {
            body = text.length > 0 ? JSON.parse(text) : undefined
          } catch {
            body = text
          }
          resolve({ status: res.statusCode ?? 0, body, latencyMs })
        })
      })
      req.on("timeout", () => req.destroy(new Error(`${method} ${path} timed out after ${requestTimeoutMs} ms`)))
      req.on("error", reject)
      req.end(payload)
    })
  return { request, close: () => agent.destroy() }
}

/** One call that must answer `expectedStatus`; anything else fails with the response for the log. */
export const callExpecting = (
  client: JsonClient,
  expectedStatus: number,
  method: string,
  path: string,
  options: { readonly body?: unknown; readonly token?: string; readonly apiKey?: string } = {}
) =>
  Effect.tryPromise({
    try: () =>
      client.request(method, path, {
        body: options.body,
        headers: {
          ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
          ...(options.apiKey === undefined ? {} : { "x-api-key": options.apiKey })
        }
      }),
    catch: (cause) => new HttpFailure({ message: `${method} ${path}: ${String(cause)}` })
  }).pipe(
    Effect.filterOrFail(
      (response) => response.status === expectedStatus,
      (response) =>
        new HttpFailure({
          message: `${method} ${path}: expected ${expectedStatus}, got ${response.status} ${JSON.stringify(response.body)}`
        })
    ),
    Effect.map((response) => response.body)
  )
