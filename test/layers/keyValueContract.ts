/**
 * The behaviour every KeyValue backend must share. Registered once per backend so memory and
 * Redis are held to exactly the same assertions.
 */
import { expect, layer } from "@effect/vitest"
import { Array as Arr, Cause, Effect, Exit, Layer, Option } from "effect"
import { KeyValue, type KeyValueError } from "../../src/layers/KeyValue.js"

export interface KeyValueContract {
  readonly name: string
  readonly layer: Layer.Layer<KeyValue>
  /** Lets stored entries age: TestClock.adjust for memory, a real sleep for Redis. */
  readonly elapse: (durationMs: number) => Effect.Effect<void>
}

/** "success", the failure's tag, or the whole cause for defects: plain strings keep assertion output readable. */
export const outcomeOf = <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.exit(effect), (exit) =>
    Exit.match(exit, {
      onSuccess: () => "success",
      onFailure: (cause) =>
        Option.match(Cause.failureOption(cause), { onNone: () => Cause.pretty(cause), onSome: (error) => error._tag })
    }))

const expectKeyValueError = <A>(effect: Effect.Effect<A, KeyValueError>) =>
  Effect.map(outcomeOf(effect), (outcome) => expect(outcome).toBe("KeyValueError"))

export const registerKeyValueContract = (contract: KeyValueContract) => {
  // Keys are unique per registration so tests sharing one store never see each other's data.
  const runId = Math.random().toString(36).slice(2, 10)
  const keyFor = (name: string) => `contract:${runId}:${name}`

  layer(contract.layer)(`KeyValue contract: ${contract.name}`, (it) => {
    it.effect("ping succeeds", () => Effect.flatMap(KeyValue, (kv) => kv.ping))

    it.effect("get of a missing key is None; set then get round-trips", () =>
      Effect.gen(function*() {
        const kv = yield* KeyValue
        const key = keyFor("roundtrip")
        expect(yield* kv.get(key)).toEqual(Option.none())
        yield* kv.set(key, "héllo wörld ✓")
        expect(yield* kv.get(key)).toEqual(Option.some("héllo wörld ✓"))
        expect(yield* kv.ttlMs(key)).toEqual(Option.none())
      }))

    it.effect("set with ttlMs expires; set without ttlMs clears the expiry", () =>
      Effect.gen(function*() {
        const kv = yield* KeyValue
        const key = keyFor("set-ttl")
        yield* kv.set(key, "a", 10_000)
        const ttlMs = Option.getOrThrow(yield* kv.ttlMs(key))
        expect(ttlMs).toBeGreaterThan(9_000)
        expect(ttlMs).toBeLessThanOrEqual(10_000)
        yield* kv.set(key, "b")
        expect(yield* kv.ttlMs(key)).toEqual(Option.none())
        expect(yield* kv.get(key)).toEqual(Option.some("b"))
      }))

    it.effect("delete removes the key; deleting a missing key succeeds", () =>
      Effect.gen(function*() {
        const kv = yield* KeyValue
        const key = keyFor("delete")
        yield* kv.set(key, "x")
        yield* kv.delete(key)
        expect(yield* kv.get(key)).toEqual(Option.none())
        expect(yield* kv.ttlMs(key)).toEqual(Option.none())
        yield* kv.delete(key)
      }))

    it.effect("setIfAbsent writes only once and sets the expiry", () =>
      Effect.gen(function*() {
        const kv = yield* KeyValue
        const key = keyFor("set-if-absent")
        expect(yield* kv.setIfAbsent(key, "first", 10_000)).toBe(true)
        expect(yield* kv.setIfAbsent(key, "second", 10_000)).toBe(false)
        expect(yield* kv.get(key)).toEqual(Option.some("first"))
        expect(Option.getOrThrow(yield* kv.ttlMs(key))).toBeLessThanOrEqual(10_000)
      }))

    it.effect("concurrent setIfAbsent: exactly one caller wins", () =>
      Effect.gen(function*() {
        const kv = yield* KeyValue
        const key = keyFor("set-if-absent-race")
        const outcomes = yield* Effect.all(
          Arr.makeBy(50, (index) => kv.setIfAbsent(key, `caller-${index}`, 10_000)),
          { concurrency: "unbounded" }
        )
        expect(outcomes.filter((won) => won)).toHaveLength(1)
      }))

    it.effect("increment counts, accepts negative steps, and starts the window once", () =>
      Effect.gen(function*() {
        const kv = yield* KeyValue
        const key = keyFor("increment")
        expect(yield* kv.increment(key, 1, 10_000)).toBe(1)
        yield* contract.elapse(200)
        expect(yield* kv.increment(key, 5, 10_000)).toBe(6)
        expect(yield* kv.increment(key, -2, 10_000)).toBe(4)
        expect(yield* kv.get(key)).toEqual(Option.some("4"))
        // Later increments must not push the window's end out.
        expect(Option.getOrThrow(yield* kv.ttlMs(key))).toBeLessThanOrEqual(9_800)
      }))

    it.effect("200 concurrent increments give exactly 200 and keep the first call's expiry", () =>
      Effect.gen(function*() {
        const kv = yield* KeyValue
        const key = keyFor("increment-race")
        // Each call asks for a different ttlMs; only the call that created the counter may set it.
        const ttlMsFor = (index: number) => 100_000 + index * 1_000
        const counts = yield* Effect.all(
          Arr.makeBy(200, (index) => Effect.map(kv.increment(key, 1, ttlMsFor(index)), (count) => ({ count, index }))),
          { concurrency: "unbounded" }
        )
        expect(counts.map(({ count }) => count).sort((a, b) => a - b)).toEqual(Arr.makeBy(200, (index) => index + 1))
        expect(yield* kv.get(key)).toEqual(Option.some("200"))
        const creator = counts.find(({ count }) => count === 1)!
        const ttlMs = Option.getOrThrow(yield* kv.ttlMs(key))
        expect(ttlMs).toBeLessThanOrEqual(ttlMsFor(creator.index))
        expect(ttlMs).toBeGreaterThan(ttlMsFor(creator.index) - 1_000)
      }))

    it.effect("incrementFloat sums decimals exactly and returns a decimal string", () =>
      Effect.gen(function*() {
        const kv = yield* KeyValue
        const key = keyFor("increment-float")
        expect(yield* kv.incrementFloat(key, "10.50", 10_000)).toBe("10.5")
        yield* contract.elapse(200)
        expect(yield* kv.incrementFloat(key, "0.25", 10_000)).toBe("10.75")
        expect(yield* kv.incrementFloat(key, "-0.75", 10_000)).toBe("10")
        expect(yield* kv.get(key)).toEqual(Option.some("10"))
        expect(Option.getOrThrow(yield* kv.ttlMs(key))).toBeLessThanOrEqual(9_800)
      }))

    it.effect("concurrent incrementFloat loses no update", () =>
      Effect.gen(function*() {
        const kv = yield* KeyValue
        const key = keyFor("increment-float-race")
        yield* Effect.all(Arr.makeBy(100, () => kv.incrementFloat(key, "0.01", 10_000)), { concurrency: "unbounded" })
        expect(yield* kv.get(key)).toEqual(Option.some("1"))
      }))

    it.effect("entries vanish after their ttlMs and a counter's window restarts", () =>
      Effect.gen(function*() {
        const kv = yield* KeyValue
        const [plain, lock, counter] = [keyFor("expire-plain"), keyFor("expire-lock"), keyFor("expire-counter")]
        yield* kv.set(plain, "v", 300)
        expect(yield* kv.setIfAbsent(lock, "v", 300)).toBe(true)
        expect(yield* kv.increment(counter, 7, 300)).toBe(7)
        yield* contract.elapse(400)
        expect(yield* kv.get(plain)).toEqual(Option.none())
        expect(yield* kv.ttlMs(plain)).toEqual(Option.none())
        expect(yield* kv.setIfAbsent(lock, "again", 300)).toBe(true)
        expect(yield* kv.increment(counter, 1, 300)).toBe(1)
      }))

    it.effect("rejects invalid ttlMs and steps with KeyValueError", () =>
      Effect.gen(function*() {
        const kv = yield* KeyValue
        const key = keyFor("invalid")
        for (const ttlMs of [0, -1, 1.5, Number.NaN]) {
          yield* expectKeyValueError(kv.set(key, "v", ttlMs))
          yield* expectKeyValueError(kv.setIfAbsent(key, "v", ttlMs))
          yield* expectKeyValueError(kv.increment(key, 1, ttlMs))
          yield* expectKeyValueError(kv.incrementFloat(key, "1", ttlMs))
        }
        yield* expectKeyValueError(kv.increment(key, 1.5, 1_000))
        for (const by of ["", "abc", "1e3", " 1", "1.", ".5"]) {
          yield* expectKeyValueError(kv.incrementFloat(key, by, 1_000))
        }
        // A rejected call must not have written anything.
        expect(yield* kv.get(key)).toEqual(Option.none())
      }))

    it.effect("incrementing a non-numeric value fails with KeyValueError and keeps the value", () =>
      Effect.gen(function*() {
        const kv = yield* KeyValue
        const key = keyFor("not-a-number")
        yield* kv.set(key, "abc", 10_000)
        yield* expectKeyValueError(kv.increment(key, 1, 10_000))
        yield* expectKeyValueError(kv.incrementFloat(key, "1", 10_000))
        yield* kv.set(key, "1.5", 10_000)
        yield* expectKeyValueError(kv.increment(key, 1, 10_000))
        expect(yield* kv.get(key)).toEqual(Option.some("1.5"))
      }))
  })
}
