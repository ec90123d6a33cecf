import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Option, TestClock, TestServices } from "effect"
import { Redis } from "ioredis"
import { KeyValue } from "../../src/layers/KeyValue.js"
import { testRedisUrl } from "../support/env.js"
import { outcomeOf, registerKeyValueContract } from "./keyValueContract.js"

// A fresh prefix per run keeps parallel runs apart and lets cleanup find every key this run wrote.
const redisKeyPrefix = `test:keyvalue:${Date.now()}:${Math.random().toString(36).slice(2, 10)}:`

registerKeyValueContract({
  name: "memory",
  layer: KeyValue.layerMemory,
  elapse: (durationMs) => TestClock.adjust(durationMs)
})

// No skip when Redis is down: the layer still builds and every test fails with KeyValueError.
registerKeyValueContract({
  name: "redis",
  layer: KeyValue.layerRedis(testRedisUrl, { keyPrefix: redisKeyPrefix }),
  elapse: (durationMs) => TestServices.provideLive(Effect.sleep(durationMs))
})

afterAll(async () => {
  const redis = new Redis(testRedisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000 })
  // Connection errors surface through connect() below; the listener only keeps ioredis from logging them twice.
  redis.on("error", () => undefined)
  try {
    await redis.connect()
    for await (const keys of redis.scanStream({ match: `${redisKeyPrefix}*`, count: 500 })) {
      if ((keys as Array<string>).length > 0) await redis.del(...(keys as Array<string>))
    }
  } finally {
    redis.disconnect()
  }
})

describe("KeyValue memory bounds", () => {
  it.effect("a full table evicts expired entries first, then the oldest write", () =>
    Effect.gen(function*() {
      const kv = yield* KeyValue
      yield* kv.set("a", "1", 100)
      yield* kv.set("b", "2")
      yield* kv.set("c", "3")
      yield* TestClock.adjust(200)
      yield* kv.set("d", "4") // "a" has expired: it makes room, "b" survives
      expect(yield* kv.get("b")).toEqual(Option.some("2"))
      yield* kv.set("c", "3 again") // rewriting "c" makes it the newest
      yield* kv.set("e", "5") // nothing expired: the oldest write, "b", goes
      expect(yield* kv.get("b")).toEqual(Option.none())
      yield* kv.set("f", "6") // then "d"
      expect(yield* kv.get("d")).toEqual(Option.none())
      for (const [key, value] of [["c", "3 again"], ["e", "5"], ["f", "6"]] as const) {
        expect(yield* kv.get(key)).toEqual(Option.some(value))
      }
    }).pipe(Effect.provide(KeyValue.layerMemoryWith({ maxEntries: 3 }))))

  it.effect("layerFromUrl without a URL is the in-process store", () =>
    Effect.gen(function*() {
      const kv = yield* KeyValue
      yield* kv.ping
      expect(yield* kv.increment("n", 2, 1_000)).toBe(2)
    }).pipe(Effect.provide(KeyValue.layerFromUrl(Option.none()))))
})

describe("KeyValue redis outage", () => {
  // Port 1 refuses connections: callers must get a KeyValueError they can fall back on, quickly.
  it.live("an unreachable Redis surfaces KeyValueError instead of hanging or dying", () =>
    Effect.gen(function*() {
      const kv = yield* KeyValue
      const outcomes = yield* Effect.all([
        outcomeOf(kv.ping),
        outcomeOf(kv.get("k")),
        outcomeOf(kv.increment("k", 1, 1_000))
      ])
      expect(outcomes).toEqual(["KeyValueError", "KeyValueError", "KeyValueError"])
    }).pipe(Effect.provide(KeyValue.layerRedis("redis://127.0.0.1:1")), Effect.timeout("5 seconds")), 10_000)
})
