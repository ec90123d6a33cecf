import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises"
import type { AddressInfo } from "node:net"
import { createRequire } from "node:module"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ObjectStore } from "../../src/layers/ObjectStore.js"
import { outcomeOf, registerObjectStoreContract } from "./objectStoreContract.js"

// s3rver ships no type declarations; this is the part of its API the suite uses.
interface S3rverServer {
  run(): Promise<AddressInfo>
  close(): Promise<void>
}
type S3rverConstructor = new(options: {
  address: string
  port: number
  directory: string
  silent: boolean
}) => S3rverServer
const S3rver = createRequire(import.meta.url)("s3rver") as S3rverConstructor

// s3rver's fixed development credentials; it checks request signatures against them.
const s3rverCredentials = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" }
const region = "us-east-1"
const bucket = "jivapay-test"

const temporaryDirectory = (prefix: string) =>
  Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), prefix))),
    (directory) => Effect.promise(() => rm(directory, { recursive: true, force: true }))
  )

// Port 0: the OS picks a free port, so parallel runs never collide.
const startS3rver = Effect.gen(function*() {
  const directory = yield* temporaryDirectory("jivapay-s3rver-")
  const server = new S3rver({ address: "127.0.0.1", port: 0, directory, silent: true })
  const address = yield* Effect.acquireRelease(
    Effect.promise(() => server.run()),
    () => Effect.promise(() => server.close())
  )
  return `http://127.0.0.1:${address.port}`
})

const createBucket = (endpoint: string) =>
  Effect.acquireUseRelease(
    Effect.sync(() => new S3Client({ region, endpoint, forcePathStyle: true, credentials: s3rverCredentials })),
    (client) => Effect.promise(() => client.send(new CreateBucketCommand({ Bucket: bucket }))),
    (client) => Effect.sync(() => client.destroy())
  )

const s3Layer = Layer.unwrapScoped(
  Effect.gen(function*() {
    const endpoint = yield* startS3rver
    yield* createBucket(endpoint)
    return ObjectStore.layerS3({ bucket, region, endpoint, forcePathStyle: true, ...s3rverCredentials })
  })
)

const localLayer = Layer.unwrapScoped(Effect.map(temporaryDirectory("jivapay-objects-"), ObjectStore.layerLocal))

registerObjectStoreContract({ name: "local directory", layer: localLayer })
registerObjectStoreContract({ name: "s3 (s3rver)", layer: s3Layer })

describe("ObjectStore local layout", () => {
  it.scoped("stores bytes at <key>, the content type in <key>.meta.json, and leaves no temp files", () =>
    Effect.gen(function*() {
      const directory = yield* temporaryDirectory("jivapay-objects-layout-")
      const store = yield* Effect.provide(ObjectStore, ObjectStore.layerLocal(directory))
      yield* store.put("kyc/doc.pdf", new Uint8Array([1, 2, 3]), "application/pdf")
      yield* store.put("kyc/doc.pdf", new Uint8Array([4, 5]), "application/pdf")
      const files = yield* Effect.promise(() => readdir(join(directory, "kyc")))
      expect(files.sort()).toEqual(["doc.pdf", "doc.pdf.meta.json"])
      const meta = yield* Effect.promise(() => readFile(join(directory, "kyc", "doc.pdf.meta.json"), "utf8"))
      expect(JSON.parse(meta)).toEqual({ contentType: "application/pdf" })
      yield* store.delete("kyc/doc.pdf")
      expect(yield* Effect.promise(() => readdir(join(directory, "kyc")))).toEqual([])
    }))

  it.scoped("a missing sidecar (crash between the two renames) reads as application/octet-stream", () =>
    Effect.gen(function*() {
      const directory = yield* temporaryDirectory("jivapay-objects-crash-")
      const store = yield* Effect.provide(ObjectStore, ObjectStore.layerLocal(directory))
      yield* store.put("proof.png", new Uint8Array([9]), "image/png")
      yield* Effect.promise(() => rm(join(directory, "proof.png.meta.json")))
      const stored = yield* store.get("proof.png")
      expect(stored.contentType).toBe("application/octet-stream")
      expect(Array.from(stored.body)).toEqual([9])
    }))
})

describe("ObjectStore local limits", () => {
  // S3 allows both "a" and "a/b"; a directory tree cannot, so the local store reports it instead.
  it.scoped("a key below an existing object fails with ObjectStoreError and leaves the object intact", () =>
    Effect.gen(function*() {
      const directory = yield* temporaryDirectory("jivapay-objects-limits-")
      const store = yield* Effect.provide(ObjectStore, ObjectStore.layerLocal(directory))
      yield* store.put("a", new Uint8Array([1]), "text/plain")
      expect(yield* outcomeOf(store.put("a/b", new Uint8Array([2]), "text/plain"))).toBe("ObjectStoreError")
      expect(yield* outcomeOf(store.get("a/b"))).toBe("ObjectNotFound")
      expect(yield* store.exists("a/b")).toBe(false)
      expect(Array.from((yield* store.get("a")).body)).toEqual([1])
    }))
})

describe("ObjectStore s3 misconfiguration", () => {
  it.scoped("ping fails with ObjectStoreError for a bucket that does not exist", () =>
    Effect.gen(function*() {
      const endpoint = yield* startS3rver
      const layer = ObjectStore.layerS3({
        bucket: "no-such-bucket",
        region,
        endpoint,
        forcePathStyle: true,
        ...s3rverCredentials
      })
      const outcome = yield* outcomeOf(Effect.flatMap(ObjectStore, (store) => store.ping).pipe(Effect.provide(layer)))
      expect(outcome).toBe("ObjectStoreError")
    }))
})
