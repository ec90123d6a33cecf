import { Effect, Layer, Option, Redacted } from "effect"
import { join } from "node:path"
import { AppConfig } from "./Config.js"
import { DatabaseLive } from "./Database.js"
import { KeyValue } from "./KeyValue.js"
import { ObjectStore } from "./ObjectStore.js"
import { OrderWakeup } from "./OrderWakeup.js"
import { TelemetryLive } from "./Telemetry.js"

/** REDIS_URL → Redis; unset → in-process memory (one process only). */
export const KeyValueLive = Layer.unwrapEffect(Effect.map(AppConfig, (config) =>
  KeyValue.layerFromUrl(Option.map(config.redisUrl, Redacted.value), { keyPrefix: "jivapay:" })))

/** S3_BUCKET → S3 (or any S3-compatible server at S3_ENDPOINT); unset → files under DATA_DIR/objects. */
export const ObjectStoreLive = Layer.unwrapEffect(Effect.map(AppConfig, (config) =>
  Option.match(config.s3Bucket, {
    onNone: () => ObjectStore.layerLocal(join(config.dataDir, "objects")),
    onSome: (bucket) =>
      ObjectStore.layerS3({
        bucket,
        region: config.s3Region,
        forcePathStyle: config.s3ForcePathStyle,
        ...Option.match(config.s3Endpoint, { onNone: () => ({}), onSome: (endpoint) => ({ endpoint }) })
      })
  })))

/** Infrastructure shared by every command: configuration, database, key-value store, object store, telemetry. */
export const InfraLive = Layer.mergeAll(OrderWakeup.layer, KeyValueLive, ObjectStoreLive).pipe(
  Layer.provideMerge(DatabaseLive),
  // Telemetry first, so that the JSON logger and LOG_LEVEL already apply while the others start.
  Layer.provideMerge(TelemetryLive),
  Layer.provideMerge(AppConfig.layer)
)
