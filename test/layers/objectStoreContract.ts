/**
 * The behaviour every ObjectStore must share. Registered once per store so the local directory
 * and S3 are held to exactly the same assertions.
 */
import { expect, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Option } from "effect"
import { ObjectStore } from "../../src/layers/ObjectStore.js"

export interface ObjectStoreContract {
  readonly name: string
  readonly layer: Layer.Layer<ObjectStore, unknown>
}

// Every byte value, so any text decoding or newline translation on the way shows up.
const allBytes = Uint8Array.from({ length: 512 }, (_, index) => index % 256)
const bytesOf = (text: string) => new TextEncoder().encode(text)

/** "success", the failure's tag, or the whole cause for defects: plain strings keep assertion output readable. */
export const outcomeOf = <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.exit(effect), (exit) =>
    Exit.match(exit, {
      onSuccess: () => "success",
      onFailure: (cause) =>
        Option.match(Cause.failureOption(cause), { onNone: () => Cause.pretty(cause), onSome: (error) => error._tag })
    }))

const expectFailureTag = <A, E extends { readonly _tag: string }>(effect: Effect.Effect<A, E>, tag: string) =>
  Effect.map(outcomeOf(effect), (outcome) => expect(outcome).toBe(tag))

export const invalidKeys = [
  "",
  "/absolute",
  "../escape",
  "a/../b",
  "a..b",
  ".hidden",
  "a/.hidden",
  "a//b",
  "trailing/",
  "with space",
  "back\\slash",
  "x".repeat(257),
  "doc.meta.json",
  "doc.meta.json/inner"
]

export const registerObjectStoreContract = (contract: ObjectStoreContract) => {
  layer(contract.layer, { timeout: "60 seconds" })(`ObjectStore contract: ${contract.name}`, (it) => {
    it.effect("ping succeeds", () => Effect.flatMap(ObjectStore, (store) => store.ping))

    it.effect("put then get round-trips binary bytes and the content type", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore
        yield* store.put("kyc/merchant-1/passport.pdf", allBytes, "application/pdf")
        const stored = yield* store.get("kyc/merchant-1/passport.pdf")
        expect(stored.contentType).toBe("application/pdf")
        expect(Array.from(stored.body)).toEqual(Array.from(allBytes))
      }))

    it.effect("an empty body round-trips", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore
        yield* store.put("empty.bin", new Uint8Array(0), "application/octet-stream")
        const stored = yield* store.get("empty.bin")
        expect(stored.body.length).toBe(0)
      }))

    it.effect("get of a missing key fails with ObjectNotFound carrying the key", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore
        const error = yield* Effect.flip(store.get("missing/nothing-here.txt"))
        expect(error._tag).toBe("ObjectNotFound")
        expect(error._tag === "ObjectNotFound" ? error.key : error.message).toBe("missing/nothing-here.txt")
      }))

    it.effect("exists follows put and delete; deleting a missing key succeeds", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore
        const key = "proofs/order-1.png"
        expect(yield* store.exists(key)).toBe(false)
        yield* store.put(key, bytesOf("png"), "image/png")
        expect(yield* store.exists(key)).toBe(true)
        yield* store.delete(key)
        expect(yield* store.exists(key)).toBe(false)
        yield* expectFailureTag(store.get(key), "ObjectNotFound")
        yield* store.delete(key)
      }))

    it.effect("a prefix of a stored key is not itself an object", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore
        yield* store.put("nested/deeper/file.txt", bytesOf("x"), "text/plain")
        expect(yield* store.exists("nested/deeper")).toBe(false)
        yield* expectFailureTag(store.get("nested/deeper"), "ObjectNotFound")
      }))

    it.effect("put overwrites both the bytes and the content type", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore
        yield* store.put("overwrite.txt", bytesOf("first version, longer"), "text/plain")
        yield* store.put("overwrite.txt", bytesOf("second"), "application/json")
        const stored = yield* store.get("overwrite.txt")
        expect(new TextDecoder().decode(stored.body)).toBe("second")
        expect(stored.contentType).toBe("application/json")
      }))

    it.effect("invalid keys are rejected by every operation with ObjectStoreError", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore
        for (const key of invalidKeys) {
          yield* expectFailureTag(store.put(key, bytesOf("x"), "text/plain"), "ObjectStoreError")
          yield* expectFailureTag(store.get(key), "ObjectStoreError")
          yield* expectFailureTag(store.exists(key), "ObjectStoreError")
          yield* expectFailureTag(store.delete(key), "ObjectStoreError")
        }
      }))

    it.effect("the longest valid key (256 characters) works", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore
        const key = "k" + "/x".repeat(127) + "y"
        expect(key.length).toBe(256)
        yield* store.put(key, bytesOf("deep"), "text/plain")
        expect(yield* store.exists(key)).toBe(true)
      }))

    it.effect("invalid content types are rejected", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore
        for (const contentType of ["", "text/plain\r\nx-injected: 1", "tëxt/plain"]) {
          yield* expectFailureTag(store.put("content-type.txt", bytesOf("x"), contentType), "ObjectStoreError")
        }
        expect(yield* store.exists("content-type.txt")).toBe(false)
      }))
  })
}
