import { Effect } from "effect"
import { performance } from "node:perf_hooks"
import { setTimeout as sleep } from "node:timers/promises"

/**
 * Bounded load: every generator has a fixed duration, a fixed number of requests in flight at most,
 * and a cap on how many latencies it keeps. Requests are `(sequence) => Promise<status>`; a thrown
 * error (connection refused, timeout) counts as an error, like any status other than `okStatus`.
 */

export interface LoadResult {
  readonly requests: number
  readonly ok: number
  readonly errors: number
  /** Statuses and error messages seen, with counts: what the errors were. */
  readonly errorKinds: Record<string, number>
  readonly elapsedMs: number
  readonly requestsPerSecond: number
  readonly latencyMs: Percentiles
}

export interface Percentiles {
  readonly p50: number
  readonly p95: number
  readonly p99: number
  readonly max: number
}

// Latencies kept for percentiles: 15 s at several thousand requests per second fits many times over.
const latencySamplesMax = 1_000_000
const errorKindsMax = 20

/** Nearest-rank percentiles of `values` (sorted here); NaN for an empty set. */
export const percentiles = (values: ReadonlyArray<number>): Percentiles => {
  if (values.length === 0) return { p50: Number.NaN, p95: Number.NaN, p99: Number.NaN, max: Number.NaN }
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted[sorted.length - 1]! }
}

class Tally {
  requests = 0
  ok = 0
  errors = 0
  readonly errorKinds: Record<string, number> = {}
  readonly latenciesMs: Array<number> = []

  async send(okStatus: number, send: () => Promise<{ readonly status: number; readonly latencyMs: number }>) {
    this.requests++
    try {
      const response = await send()
      if (this.latenciesMs.length < latencySamplesMax) this.latenciesMs.push(response.latencyMs)
      if (response.status === okStatus) this.ok++
      else this.error(`HTTP ${response.status}`)
    } catch (cause) {
      this.error(cause instanceof Error ? cause.message.slice(0, 120) : String(cause))
    }
  }

  private error(kind: string) {
    this.errors++
    if (kind in this.errorKinds || Object.keys(this.errorKinds).length < errorKindsMax) {
      this.errorKinds[kind] = (this.errorKinds[kind] ?? 0) + 1
    }
  }

  result(elapsedMs: number): LoadResult {
    return {
      requests: this.requests,
      ok: this.ok,
      errors: this.errors,
      errorKinds: this.errorKinds,
      elapsedMs,
      requestsPerSecond: this.requests / (elapsedMs / 1000),
      latencyMs: percentiles(this.latenciesMs)
    }
  }
}

/**
 * Closed loop: `concurrency` clients, each sending its next request when the last one answered,
 * until `durationMs` has passed. Measures the most the server sustains at that concurrency.
 */
export const closedLoop = (options: {
  readonly concurrency: number
  readonly durationMs: number
  readonly okStatus: number
  readonly send: (sequence: number) => Promise<{ readonly status: number; readonly latencyMs: number }>
}) =>
  Effect.promise(async () => {
    const tally = new Tally()
    const startedAt = performance.now()
    const deadline = startedAt + options.durationMs
    let sequence = 0
    const client = async () => {
      while (performance.now() < deadline) await tally.send(options.okStatus, () => options.send(sequence++))
    }
    await Promise.all(Array.from({ length: options.concurrency }, client))
    return tally.result(performance.now() - startedAt)
  })

/**
 * Open loop: requests start on a fixed schedule (`ratePerSecond`) whatever the answers, as merchants'
 * orders arrive; at most `inFlightMax` wait at once, and a request that would exceed it is skipped
 * and counted, so a slow server shows up as skipped requests instead of an unbounded queue.
 */
export const openLoop = (options: {
  readonly ratePerSecond: number
  readonly durationMs: number
  readonly inFlightMax: number
  readonly okStatus: number
  readonly send: (sequence: number) => Promise<{ readonly status: number; readonly latencyMs: number }>
}) =>
  Effect.promise(async () => {
    const tally = new Tally()
    const total = Math.floor(options.ratePerSecond * options.durationMs / 1000)
    const intervalMs = 1000 / options.ratePerSecond
    const inFlight = new Set<Promise<void>>()
    let skipped = 0
    const startedAt = performance.now()
    for (let sequence = 0; sequence < total; sequence++) {
      const dueAt = startedAt + sequence * intervalMs
      const waitMs = dueAt - performance.now()
      if (waitMs > 0) await sleep(waitMs)
      if (inFlight.size >= options.inFlightMax) {
        skipped++
        continue
      }
      const request: Promise<void> = tally.send(options.okStatus, () => options.send(sequence)).finally(() =>
        inFlight.delete(request)
      )
      inFlight.add(request)
    }
    await Promise.all(inFlight)
    return { ...tally.result(performance.now() - startedAt), skipped }
  })
