/**
 * ObjectStore: blobs such as KYC documents and payment proofs. A local directory for
 * single-node deployments and tests, any S3-compatible bucket in production.
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig
} from "@aws-sdk/client-s3"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Context, Duration, Effect, Layer, Schema } from "effect"

export class ObjectStoreError extends Schema.TaggedError<ObjectStoreError>()("ObjectStoreError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

export class ObjectNotFound extends Schema.TaggedError<ObjectNotFound>()("ObjectNotFound", {
  key: Schema.String
}) {}

export interface StoredObject {
  readonly body: Uint8Array
  readonly contentType: string
}

export interface ObjectStoreService {
  /** Creates or replaces the object. */
  readonly put: (key: string, body: Uint8Array, contentType: string) => Effect.Effect<void, ObjectStoreError>
  readonly get: (key: string) => Effect.Effect<StoredObject, ObjectStoreError | ObjectNotFound>
  readonly exists: (key: string) => Effect.Effect<boolean, ObjectStoreError>
  /** Deleting a missing object succeeds, as in S3. */
  readonly delete: (key: string) => Effect.Effect<void, ObjectStoreError>
  readonly ping: Effect.Effect<void, ObjectStoreError>
}

export interface S3Options {
  readonly bucket: string
  readonly region: string
  /** For S3-compatible servers (MinIO, R2, s3rver). */
  readonly endpoint?: string
  readonly forcePathStyle?: boolean
  /** Both or neither; without them the SDK's default credential chain applies. */
  readonly accessKeyId?: string
  readonly secretAccessKey?: string
  /** Upper bound for one request including retries. */
  readonly requestTimeoutMs?: number
}

const keyPattern = /^[A-Za-z0-9][A-Za-z0-9/_.-]{0,255}$/
// Reserved for the local store's content-type sidecar; rejected everywhere so stores behave alike.
const metaSuffix = ".meta.json"
const contentTypePattern = /^[\x21-\x7E][\x20-\x7E]{0,254}$/
const contentTypeFallback = "application/octet-stream"
const requestTimeoutMsDefault = 30_000

// ---------------------------------------------------------------------------------------------
// Preconditions shared by both stores.

// Besides the pattern: no "..", no empty or dot-leading segments ("a//b", "a/.x", "a/"), and no
// segment ending in the sidecar suffix; in the local store these would alias other keys, collide
// with temp or sidecar files, or escape the directory.
const keyProblem = (key: string): string | undefined => {
  if (!keyPattern.test(key)) return "must match " + keyPattern.source
  if (key.includes("..")) return "must not contain '..'"
  const segments = key.split("/")
  if (segments.some((segment) => segment === "" || segment.startsWith("."))) {
    return "segments must be non-empty and must not start with '.'"
  }
  if (segments.some((segment) => segment.endsWith(metaSuffix))) return `segments must not end with ${metaSuffix}`
  return undefined
}

const checkKey = (key: string): Effect.Effect<void, ObjectStoreError> => {
  const problem = keyProblem(key)
  return problem === undefined
    ? Effect.void
    : Effect.fail(new ObjectStoreError({ message: `invalid object key ${JSON.stringify(key)}: ${problem}` }))
}

// Printable ASCII only: it becomes an HTTP header.
const checkContentType = (contentType: string): Effect.Effect<void, ObjectStoreError> =>
  contentTypePattern.test(contentType)
    ? Effect.void
    : Effect.fail(new ObjectStoreError({ message: `invalid content type ${JSON.stringify(contentType)}` }))

const failure = (message: string) => (cause: unknown) =>
  new ObjectStoreError({ message: `${message}: ${cause instanceof Error ? cause.message : String(cause)}`, cause })

// Validation and a `ObjectStore.method` span around every operation, for both stores.
const guard = (backend: "local" | "s3", store: ObjectStoreService): ObjectStoreService => {
  const span = (method: string, key?: string) =>
    Effect.withSpan(`ObjectStore.${method}`, { attributes: key === undefined ? { backend } : { backend, key } })
  return {
    put: (key, body, contentType) =>
      Effect.all([checkKey(key), checkContentType(contentType)]).pipe(
        Effect.zipRight(store.put(key, body, contentType)),
        span("put", key)
      ),
    get: (key) => checkKey(key).pipe(Effect.zipRight(store.get(key)), span("get", key)),
    exists: (key) => checkKey(key).pipe(Effect.zipRight(store.exists(key)), span("exists", key)),
    delete: (key) => checkKey(key).pipe(Effect.zipRight(store.delete(key)), span("delete", key)),
    ping: store.ping.pipe(span("ping"))
  }
}

// ---------------------------------------------------------------------------------------------
// Local directory: `<directory>/<key>` holds the bytes, `<directory>/<key>.meta.json` the content type.

const errorCode = (cause: unknown) =>
  typeof cause === "object" && cause !== null && "code" in cause ? cause.code : undefined

// ENOTDIR/EISDIR: a path component is a file, or the key names a directory of other keys; S3
// would report either as a missing object.
const isMissingFile = (cause: unknown) => ["ENOENT", "ENOTDIR", "EISDIR"].includes(String(errorCode(cause)))

// Temp file + fsync + rename: a crash leaves either the old file or the new one, never half of one.
// The dot prefix keeps temp files out of the key space (segments cannot start with ".").
const writeAtomically = async (filePath: string, data: Uint8Array | string) => {
  const tempPath = path.join(path.dirname(filePath), `.${path.basename(filePath)}.${randomUUID()}.tmp`)
  try {
    const handle = await fs.open(tempPath, "wx")
    try {
      await handle.writeFile(data)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await fs.rename(tempPath, filePath)
  } catch (cause) {
    await fs.rm(tempPath, { force: true })
    throw cause
  }
}

const readContentType = async (metaPath: string): Promise<string> => {
  try {
    const meta: unknown = JSON.parse(await fs.readFile(metaPath, "utf8"))
    const contentType =
      typeof meta === "object" && meta !== null && "contentType" in meta ? meta.contentType : undefined
    return typeof contentType === "string" ? contentType : contentTypeFallback
  } catch (cause) {
    // Data is renamed into place before its sidecar, so a crash in between leaves no sidecar.
    if (isMissingFile(cause)) return contentTypeFallback
    throw cause
  }
}

const makeLocal = (directory: string): ObjectStoreService => {
  const root = path.resolve(directory)
  const dataPath = (key: string) => path.join(root, key)
  const metaPath = (key: string) => dataPath(key) + metaSuffix

  const put = async (key: string, body: Uint8Array, contentType: string) => {
    await fs.mkdir(path.dirname(dataPath(key)), { recursive: true })
    await writeAtomically(dataPath(key), body)
    await writeAtomically(metaPath(key), JSON.stringify({ contentType }))
  }

  const get = (key: string) =>
    Effect.tryPromise({
      try: async () => {
        const body = new Uint8Array(await fs.readFile(dataPath(key)))
        return { body, contentType: await readContentType(metaPath(key)) }
      },
      catch: (cause) => (isMissingFile(cause) ? new ObjectNotFound({ key }) : failure(`local get ${key} failed`)(cause))
    })

  const exists = async (key: string) => {
    try {
      return (await fs.stat(dataPath(key))).isFile()
    } catch (cause) {
      if (isMissingFile(cause)) return false
      throw cause
    }
  }

  const remove = async (key: string) => {
    await fs.rm(dataPath(key), { force: true })
    await fs.rm(metaPath(key), { force: true })
  }

  return {
    put: (key, body, contentType) =>
      Effect.tryPromise({ try: () => put(key, body, contentType), catch: failure(`local put ${key} failed`) }),
    get,
    exists: (key) => Effect.tryPromise({ try: () => exists(key), catch: failure(`local exists ${key} failed`) }),
    delete: (key) => Effect.tryPromise({ try: () => remove(key), catch: failure(`local delete ${key} failed`) }),
    ping: Effect.tryPromise({
      try: () => fs.access(root, fs.constants.R_OK | fs.constants.W_OK),
      catch: failure(`local directory ${root} is not writable`)
    })
  }
}

// ---------------------------------------------------------------------------------------------
// S3-compatible bucket.

// GetObject reports a missing key as NoSuchKey, HeadObject (no body) as NotFound.
const isMissingObject = (cause: unknown) =>
  cause instanceof Error && (cause.name === "NoSuchKey" || cause.name === "NotFound")

const s3Config = (options: S3Options): S3ClientConfig => ({
  region: options.region,
  ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
  ...(options.forcePathStyle === undefined ? {} : { forcePathStyle: options.forcePathStyle }),
  ...(options.accessKeyId === undefined || options.secretAccessKey === undefined
    ? {}
    : { credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey } })
})

const makeS3 = (client: S3Client, options: S3Options): ObjectStoreService => {
  const Bucket = options.bucket
  const timeout = Duration.millis(options.requestTimeoutMs ?? requestTimeoutMsDefault)
  // The abort signal lets interruption (including the timeout) cancel the HTTP request.
  const send = <A>(operation: string, key: string, run: (abortSignal: AbortSignal) => Promise<A>) =>
    Effect.tryPromise({
      try: run,
      catch: (cause) =>
        isMissingObject(cause) ? new ObjectNotFound({ key }) : failure(`s3 ${operation} ${key} failed`)(cause)
    }).pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () => new ObjectStoreError({ message: `s3 ${operation} ${key} timed out` })
      })
    )
  // Only get and exists can meaningfully report a missing object; elsewhere it is a plain failure.
  const sendMissingIsFailure = <A>(operation: string, key: string, run: (abortSignal: AbortSignal) => Promise<A>) =>
    Effect.catchTag(send(operation, key, run), "ObjectNotFound", () =>
      Effect.fail(new ObjectStoreError({ message: `s3 ${operation} ${key} failed: not found` }))
    )

  const get = (key: string) =>
    send("get", key, async (abortSignal) => {
      const output = await client.send(new GetObjectCommand({ Bucket, Key: key }), { abortSignal })
      if (output.Body === undefined) throw new Error("response has no body")
      return { body: await output.Body.transformToByteArray(), contentType: output.ContentType ?? contentTypeFallback }
    })

  const exists = (key: string) =>
    send("exists", key, (abortSignal) =>
      client.send(new HeadObjectCommand({ Bucket, Key: key }), { abortSignal })
    ).pipe(
      Effect.as(true),
      Effect.catchTag("ObjectNotFound", () => Effect.succeed(false))
    )

  return {
    put: (key, body, contentType) =>
      sendMissingIsFailure("put", key, (abortSignal) =>
        client.send(new PutObjectCommand({ Bucket, Key: key, Body: body, ContentType: contentType }), { abortSignal })
      ).pipe(Effect.asVoid),
    get,
    exists,
    delete: (key) =>
      sendMissingIsFailure("delete", key, (abortSignal) =>
        client.send(new DeleteObjectCommand({ Bucket, Key: key }), { abortSignal })
      ).pipe(Effect.asVoid),
    ping: sendMissingIsFailure("ping", Bucket, (abortSignal) =>
      client.send(new HeadBucketCommand({ Bucket }), { abortSignal })
    ).pipe(Effect.asVoid)
  }
}

// ---------------------------------------------------------------------------------------------

export class ObjectStore extends Context.Tag("ObjectStore")<ObjectStore, ObjectStoreService>() {
  /** Files under `directory` (created if missing). */
  static layerLocal(directory: string): Layer.Layer<ObjectStore, ObjectStoreError> {
    return Layer.effect(
      ObjectStore,
      Effect.tryPromise({
        try: () => fs.mkdir(directory, { recursive: true }),
        catch: failure(`cannot create object directory ${directory}`)
      }).pipe(Effect.as(guard("local", makeLocal(directory))))
    )
  }

  /** S3 or an S3-compatible server; the client is destroyed when the layer's scope closes. */
  static layerS3(options: S3Options): Layer.Layer<ObjectStore> {
    return Layer.scoped(
      ObjectStore,
      Effect.acquireRelease(
        Effect.sync(() => new S3Client(s3Config(options))),
        (client) => Effect.sync(() => client.destroy())
      ).pipe(Effect.map((client) => guard("s3", makeS3(client, options))))
    )
  }
}
