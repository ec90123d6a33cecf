/**
 * KeyValue: the small key/value store behind rate limits, velocity sums, idempotency locks
 * and caches. Redis in production; an in-process bounded map when no Redis is configured.
 * Every failure is a `KeyValueError` so callers can decide to fall back instead of crashing.
 */
import { BigDecimal, Context, Effect, Layer, Option, Runtime, Schema } from "effect"
import { Redis } from "ioredis"

export class KeyValueError extends Schema.TaggedError<KeyValueError>()("KeyValueError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

export interface KeyValueService {
  readonly get: (key: string) => Effect.Effect<Option.Option<string>, KeyValueError>
  /** Without `ttlMs` the key never expires (and a previous expiry is cleared). */
  readonly set: (key: string, value: string, ttlMs?: number) => Effect.Effect<void, KeyValueError>
  /** True when the value was written, false when the key already held a value. */
  readonly setIfAbsent: (key: string, value: string, ttlMs: number) => Effect.Effect<boolean, KeyValueError>
  readonly delete: (key: string) => Effect.Effect<void, KeyValueError>
  /**
   * Atomic INCRBY returning the new value. The expiry is set only when the counter has none
   * (its first increment), so a fixed window ends `ttlMs` after it started and later
   * increments never extend it.
   */
  readonly increment: (key: string, by: number, ttlMs: number) => Effect.Effect<number, KeyValueError>
  /** Like `increment` for decimal amounts (`by` like "-12.50"); returns the new sum as a decimal string. */
  readonly incrementFloat: (key: string, by: string, ttlMs: number) => Effect.Effect<string, KeyValueError>
  /** Remaining lifetime; None when the key is absent or never expires. */
  readonly ttlMs: (key: string) => Effect.Effect<Option.Option<number>, KeyValueError>
  readonly ping: Effect.Effect<void, KeyValueError>
}

export interface RedisOptions {
  /** Namespaces every key, e.g. per environment or per test run. */
  readonly keyPrefix?: string
  /** Upper bound for one command, so a hung Redis turns into a KeyValueError quickly. */
  readonly commandTimeoutMs?: number
}

export interface MemoryOptions {
  readonly maxEntries?: number
}

const maxEntriesDefault = 100_000
const connectTimeoutMs = 2_000
const commandTimeoutMsDefault = 1_000
// Decimal amounts only (no exponent, no blanks) so both backends accept exactly the same inputs.
const decimalPattern = /^-?\d+(\.\d+)?$/

// ---------------------------------------------------------------------------------------------
// Preconditions shared by both backends, so they reject exactly the same calls.

const checkTtlMs = (ttlMs: number): Effect.Effect<void, KeyValueError> =>
  Number.isSafeInteger(ttlMs) && ttlMs > 0
    ? Effect.void
    : Effect.fail(new KeyValueError({ message: `ttlMs must be a positive integer, got ${ttlMs}` }))

const checkIntegerStep = (by: number): Effect.Effect<void, KeyValueError> =>
  Number.isSafeInteger(by)
    ? Effect.void
    : Effect.fail(new KeyValueError({ message: `increment must be a safe integer, got ${by}` }))

const checkDecimalStep = (by: string): Effect.Effect<void, KeyValueError> =>
  decimalPattern.test(by)
    ? Effect.void
    : Effect.fail(new KeyValueError({ message: `increment must be a decimal string, got ${JSON.stringify(by)}` }))

const checkOptionalTtlMs = (ttlMs: number | undefined) => (ttlMs === undefined ? Effect.void : checkTtlMs(ttlMs))

// Spans named `KeyValue.method`, with the backend as an attribute, for every operation.
const instrument = (backend: "memory" | "redis", service: KeyValueService): KeyValueService => {
  const span = (method: string) => Effect.withSpan(`KeyValue.${method}`, { attributes: { backend } })
  return {
    get: (key) => service.get(key).pipe(span("get")),
    set: (key, value, ttlMs) => service.set(key, value, ttlMs).pipe(span("set")),
    setIfAbsent: (key, value, ttlMs) => service.setIfAbsent(key, value, ttlMs).pipe(span("setIfAbsent")),
    delete: (key) => service.delete(key).pipe(span("delete")),
    increment: (key, by, ttlMs) => service.increment(key, by, ttlMs).pipe(span("increment")),
    incrementFloat: (key, by, ttlMs) => service.incrementFloat(key, by, ttlMs).pipe(span("incrementFloat")),
    ttlMs: (key) => service.ttlMs(key).pipe(span("ttlMs")),
    ping: service.ping.pipe(span("ping"))
  }
}

// ---------------------------------------------------------------------------------------------
// Memory backend. Every operation runs inside one synchronous block, which makes
// read-modify-write atomic on the single JavaScript thread.

interface MemoryEntry {
  readonly value: string
  readonly expiresAtMs: number | undefined
}

class MemoryTable {
  // Map iteration follows insertion order; writes re-insert, so the first key is the oldest write.
  private readonly entries = new Map<string, MemoryEntry>()
  // Evicting a batch amortises the O(n) expiry sweep over many inserts into a full table.
  private readonly evictionBatch: number

  constructor(private readonly maxEntries: number) {
    this.evictionBatch = Math.max(1, Math.floor(maxEntries / 100))
  }

  read(key: string, nowMs: number): MemoryEntry | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAtMs !== undefined && entry.expiresAtMs <= nowMs) {
      this.entries.delete(key)
      return undefined
    }
    return entry
  }

  write(key: string, entry: MemoryEntry, nowMs: number): void {
    const isNew = !this.entries.delete(key)
    if (isNew && this.entries.size >= this.maxEntries) this.makeRoom(nowMs)
    this.entries.set(key, entry)
  }

  remove(key: string): void {
    this.entries.delete(key)
  }

  get size(): number {
    return this.entries.size
  }

  private makeRoom(nowMs: number): void {
    for (const [key, entry] of this.entries) {
      if (entry.expiresAtMs !== undefined && entry.expiresAtMs <= nowMs) this.entries.delete(key)
    }
    if (this.entries.size < this.maxEntries) return
    const target = this.maxEntries - this.evictionBatch
    for (const key of this.entries.keys()) {
      if (this.entries.size <= target) break
      this.entries.delete(key)
    }
  }
}

const expiresAt = (nowMs: number, ttlMs: number | undefined) => (ttlMs === undefined ? undefined : nowMs + ttlMs)

// Reads the caller's Clock (so TestClock drives expiry in tests) and runs `f` synchronously.
const withNowMs = <A>(f: (nowMs: number) => A): Effect.Effect<A, KeyValueError> =>
  Effect.clockWith((clock) =>
    Effect.try({
      try: () => f(clock.unsafeCurrentTimeMillis()),
      catch: (cause) =>
        cause instanceof KeyValueError ? cause : new KeyValueError({ message: "memory key/value failed", cause })
    })
  )

const parseCounter = (key: string, value: string): number => {
  const counter = /^-?\d+$/.test(value) ? Number(value) : Number.NaN
  if (!Number.isSafeInteger(counter)) throw new KeyValueError({ message: `value at ${key} is not an integer` })
  return counter
}

const parseDecimal = (key: string, value: string): BigDecimal.BigDecimal =>
  Option.getOrThrowWith(
    decimalPattern.test(value) ? BigDecimal.fromString(value) : Option.none(),
    () => new KeyValueError({ message: `value at ${key} is not a decimal` })
  )

// Keeps an existing window's expiry; starts one for a new counter (or one that had none).
const windowExpiry = (entry: MemoryEntry | undefined, nowMs: number, ttlMs: number) =>
  entry?.expiresAtMs ?? nowMs + ttlMs

const makeMemory = (options: MemoryOptions): KeyValueService => {
  const maxEntries = options.maxEntries ?? maxEntriesDefault
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new Error(`maxEntries must be >= 1, got ${maxEntries}`)
  const table = new MemoryTable(maxEntries)

  const increment = (key: string, by: number, ttlMs: number) =>
    withNowMs((nowMs) => {
      const entry = table.read(key, nowMs)
      const counter = (entry === undefined ? 0 : parseCounter(key, entry.value)) + by
      if (!Number.isSafeInteger(counter)) throw new KeyValueError({ message: `counter at ${key} overflowed` })
      table.write(key, { value: String(counter), expiresAtMs: windowExpiry(entry, nowMs, ttlMs) }, nowMs)
      return counter
    })

  const incrementFloat = (key: string, by: string, ttlMs: number) =>
    withNowMs((nowMs) => {
      const entry = table.read(key, nowMs)
      const current = entry === undefined ? BigDecimal.fromBigInt(0n) : parseDecimal(key, entry.value)
      // `by` already passed checkDecimalStep.
      const sum = BigDecimal.format(BigDecimal.normalize(BigDecimal.sum(current, BigDecimal.unsafeFromString(by))))
      table.write(key, { value: sum, expiresAtMs: windowExpiry(entry, nowMs, ttlMs) }, nowMs)
      return sum
    })

  return {
    get: (key) => withNowMs((nowMs) => Option.fromNullable(table.read(key, nowMs)?.value)),
    set: (key, value, ttlMs) =>
      checkOptionalTtlMs(ttlMs).pipe(
        Effect.zipRight(withNowMs((nowMs) => table.write(key, { value, expiresAtMs: expiresAt(nowMs, ttlMs) }, nowMs)))
      ),
    setIfAbsent: (key, value, ttlMs) =>
      checkTtlMs(ttlMs).pipe(
        Effect.zipRight(
          withNowMs((nowMs) => {
            if (table.read(key, nowMs) !== undefined) return false
            table.write(key, { value, expiresAtMs: nowMs + ttlMs }, nowMs)
            return true
          })
        )
      ),
    delete: (key) => withNowMs(() => table.remove(key)),
    increment: (key, by, ttlMs) =>
      Effect.all([checkIntegerStep(by), checkTtlMs(ttlMs)]).pipe(Effect.zipRight(increment(key, by, ttlMs))),
    incrementFloat: (key, by, ttlMs) =>
      Effect.all([checkDecimalStep(by), checkTtlMs(ttlMs)]).pipe(Effect.zipRight(incrementFloat(key, by, ttlMs))),
    ttlMs: (key) =>
      withNowMs((nowMs) => {
        const expiresAtMs = table.read(key, nowMs)?.expiresAtMs
        return expiresAtMs === undefined ? Option.none() : Option.some(expiresAtMs - nowMs)
      }),
    ping: withNowMs(() => table.size).pipe(Effect.asVoid)
  }
}

// ---------------------------------------------------------------------------------------------
// Redis backend.

// One script per counter kind so "increment, then start the window if it has none" is atomic.
// PTTL -1 means "exists without expiry": true right after the first increment.
const incrementScript = `
local counter = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return counter`

const incrementFloatScript = `
local sum = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return sum`

const redisCall = <A>(command: string, run: () => Promise<A>): Effect.Effect<A, KeyValueError> =>
  Effect.tryPromise({
    try: run,
    catch: (cause) => new KeyValueError({ message: `redis ${command} failed: ${errorMessage(cause)}`, cause })
  })

const errorMessage = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

const expectType = <A>(command: string, isExpected: (value: unknown) => value is A) => (value: unknown) =>
  isExpected(value)
    ? Effect.succeed(value)
    : Effect.fail(new KeyValueError({ message: `redis ${command} returned unexpected ${typeof value}` }))

const isNumber = (value: unknown): value is number => typeof value === "number"
const isString = (value: unknown): value is string => typeof value === "string"

const makeRedisService = (client: Redis, keyPrefix: string): KeyValueService => {
  const prefixed = (key: string) => keyPrefix + key
  return {
    get: (key) => redisCall("GET", () => client.get(prefixed(key))).pipe(Effect.map(Option.fromNullable)),
    set: (key, value, ttlMs) =>
      checkOptionalTtlMs(ttlMs).pipe(
        Effect.zipRight(
          redisCall("SET", () =>
            ttlMs === undefined ? client.set(prefixed(key), value) : client.set(prefixed(key), value, "PX", ttlMs)
          )
        ),
        Effect.asVoid
      ),
    setIfAbsent: (key, value, ttlMs) =>
      checkTtlMs(ttlMs).pipe(
        Effect.zipRight(redisCall("SET NX", () => client.set(prefixed(key), value, "PX", ttlMs, "NX"))),
        Effect.map((reply) => reply === "OK")
      ),
    delete: (key) => redisCall("DEL", () => client.del(prefixed(key))).pipe(Effect.asVoid),
    increment: (key, by, ttlMs) =>
      Effect.all([checkIntegerStep(by), checkTtlMs(ttlMs)]).pipe(
        Effect.zipRight(redisCall("INCRBY", () => client.eval(incrementScript, 1, prefixed(key), by, ttlMs))),
        Effect.flatMap(expectType("INCRBY", isNumber))
      ),
    incrementFloat: (key, by, ttlMs) =>
      Effect.all([checkDecimalStep(by), checkTtlMs(ttlMs)]).pipe(
        Effect.zipRight(redisCall("INCRBYFLOAT", () => client.eval(incrementFloatScript, 1, prefixed(key), by, ttlMs))),
        Effect.flatMap(expectType("INCRBYFLOAT", isString))
      ),
    ttlMs: (key) =>
      redisCall("PTTL", () => client.pttl(prefixed(key))).pipe(
        // -2: no such key, -1: no expiry.
        Effect.map((remainingMs) => (remainingMs >= 0 ? Option.some(remainingMs) : Option.none()))
      ),
    ping: redisCall("PING", () => client.ping()).pipe(Effect.asVoid)
  }
}

const openRedis = (url: string, commandTimeoutMs: number) =>
  Effect.acquireRelease(
    Effect.sync(
      () =>
        new Redis(url, {
          lazyConnect: true,
          // Fail fast instead of queueing: callers fall back when Redis is away.
          enableOfflineQueue: false,
          maxRetriesPerRequest: 1,
          connectTimeout: connectTimeoutMs,
          commandTimeout: commandTimeoutMs
        })
    ),
    (client) =>
      Effect.tryPromise(() => client.quit()).pipe(
        Effect.timeout("2 seconds"),
        // QUIT fails when never connected; then just drop the socket.
        Effect.catchAll(() => Effect.sync(() => client.disconnect()))
      )
  )

// ioredis emits "error" on every reconnect attempt; log only when the message changes.
const logConnectionErrors = (client: Redis) =>
  Effect.runtime<never>().pipe(
    Effect.map((runtime) => {
      let lastMessage = ""
      client.on("error", (error: Error) => {
        if (error.message === lastMessage) return
        lastMessage = error.message
        Runtime.runFork(runtime)(Effect.logWarning("redis connection error", error.message))
      })
      client.on("ready", () => {
        lastMessage = ""
      })
    })
  )

// Connects up front because with enableOfflineQueue=false the first command would fail otherwise.
// An unreachable Redis at startup is not fatal: ioredis keeps reconnecting and commands fail
// with KeyValueError until it is back.
const connectRedis = (client: Redis) =>
  redisCall("CONNECT", () => client.connect()).pipe(
    Effect.catchAll((error) =>
      Effect.logWarning("redis unavailable at startup; commands fail until it recovers", error.message)
    )
  )

const makeRedis = (url: string, options: RedisOptions) =>
  Effect.gen(function*() {
    const client = yield* openRedis(url, options.commandTimeoutMs ?? commandTimeoutMsDefault)
    yield* logConnectionErrors(client)
    yield* connectRedis(client)
    return makeRedisService(client, options.keyPrefix ?? "")
  })

// ---------------------------------------------------------------------------------------------

export class KeyValue extends Context.Tag("KeyValue")<KeyValue, KeyValueService>() {
  /** In-process store bounded to `maxEntries` (default 100_000): expired entries go first, then the oldest writes. */
  static layerMemoryWith(options: MemoryOptions): Layer.Layer<KeyValue> {
    return Layer.sync(KeyValue, () => instrument("memory", makeMemory(options)))
  }

  static readonly layerMemory: Layer.Layer<KeyValue> = KeyValue.layerMemoryWith({})

  /** Scoped ioredis client; closed (QUIT) when the layer's scope closes. */
  static layerRedis(url: string, options: RedisOptions = {}): Layer.Layer<KeyValue> {
    return Layer.scoped(KeyValue, Effect.map(makeRedis(url, options), (service) => instrument("redis", service)))
  }

  /** Redis when a URL is configured, otherwise the in-process store. */
  static layerFromUrl(url: Option.Option<string>, options: RedisOptions = {}): Layer.Layer<KeyValue> {
    return Option.match(url, {
      onNone: () => KeyValue.layerMemory,
      onSome: (redisUrl) => KeyValue.layerRedis(redisUrl, options)
    })
  }
}
