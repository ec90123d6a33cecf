import { HttpApiBuilder, type HttpServerRequest, Multipart } from "@effect/platform"
import { Effect, Option, Stream } from "effect"
import { Forbidden, PayloadTooLarge, ValidationError } from "../domain/Errors.js"
import { CurrentStore } from "../domain/Principal.js"
import { AppConfig } from "../layers/Config.js"
import { requireRole } from "../services/AuthService.js"
import { OrderService } from "../services/OrderService.js"
import { LifecycleActor, OrderStatusManager, type Receipt, UnsupportedReceiptType } from "../services/OrderStatusManager.js"
import { JivaPayApi } from "./Api.js"
import { currentClientIp } from "./ClientIp.js"

// The form around one receipt: boundaries, part headers and a few small text fields.
const multipartOverheadBytes = 64 * 1024
const multipartPartsMax = 8
const multipartFieldBytesMax = 1024

const receiptField = "receipt"

const hasBody = (request: HttpServerRequest.HttpServerRequest) => {
  const declared = request.headers["content-length"]
  return request.headers["transfer-encoding"] !== undefined || (declared !== undefined && Number(declared) > 0)
}

const tooLarge = (maxReceiptBytes: number) =>
  new PayloadTooLarge({ message: `receipt: the upload is larger than ${maxReceiptBytes} bytes` })

/** The parser's refusals as client errors: too big is 413, anything malformed 400. */
const fromMultipartError = (maxReceiptBytes: number) => (error: Multipart.MultipartError) => {
  switch (error.reason) {
    case "FileTooLarge":
    case "BodyTooLarge":
    case "FieldTooLarge":
      return tooLarge(maxReceiptBytes)
    case "TooManyParts":
      return new ValidationError({ field: receiptField, message: `receipt: at most ${multipartPartsMax} form parts` })
    case "Parse":
    case "InternalError":
      return new ValidationError({ field: receiptField, message: "receipt: the multipart body is malformed" })
  }
}

/**
 * The receipt's bytes, refused with 413 as soon as they pass the limit. The parser's own per-part
 * limit is not used: in @effect/platform-node 0.108 a part that trips it is dropped and, when the
 * parser reaches its end before the reader sees the error, the error is lost too, so an oversized
 * receipt would look like no receipt at all.
 */
const readFileLimited = (file: Multipart.File, maxReceiptBytes: number) =>
  Stream.runFoldEffect(
    file.content,
    { chunks: [] as Array<Uint8Array>, bytes: 0 },
    (read, chunk): Effect.Effect<{ chunks: Array<Uint8Array>; bytes: number }, PayloadTooLarge> => {
      const bytes = read.bytes + chunk.length
      if (bytes > maxReceiptBytes) return Effect.fail(tooLarge(maxReceiptBytes))
      read.chunks.push(chunk)
      return Effect.succeed({ chunks: read.chunks, bytes })
    }
  ).pipe(Effect.map(({ bytes, chunks }) => new Uint8Array(Buffer.concat(chunks, bytes))))

/**
 * Reads the optional `receipt` file of a multipart form, bounded while it streams in: an oversized
 * upload is refused before it is buffered, let alone stored. No body at all means no receipt;
 * whether one was needed is the state machine's call.
 */
const readReceipt = (
  request: HttpServerRequest.HttpServerRequest,
  parts: Stream.Stream<Multipart.Part, Multipart.MultipartError>,
  maxReceiptBytes: number
) =>
  Effect.gen(function*() {
    if (!hasBody(request)) return undefined
    const contentType = (request.headers["content-type"] ?? "").toLowerCase()
    if (!contentType.startsWith("multipart/form-data")) {
      // A JSON body cannot carry the file; ignoring it would confirm without the receipt the client meant to send.
      return yield* new UnsupportedReceiptType({
        field: receiptField,
        message: "receipt: send the receipt as multipart/form-data in the file field receipt"
      })
    }
    const limited = Multipart.withLimitsStream(parts, {
      maxParts: Option.some(multipartPartsMax),
      maxFieldSize: multipartFieldBytesMax,
      maxFileSize: Option.none(),
      maxTotalSize: Option.some(maxReceiptBytes + multipartOverheadBytes)
    })
    const collect = (
      found: Receipt | undefined,
      part: Multipart.Part
    ): Effect.Effect<Receipt | undefined, ValidationError | PayloadTooLarge | Multipart.MultipartError> => {
      if (part.key !== receiptField) {
        return part._tag === "Field"
          ? Effect.succeed(found)
          : Effect.fail(new ValidationError({ field: part.key, message: `${part.key}: unexpected file; send the receipt in the field receipt` }))
      }
      if (part._tag === "Field") {
        return Effect.fail(new ValidationError({ field: receiptField, message: "receipt: must be a file, not a text field" }))
      }
      if (found !== undefined) {
        return Effect.fail(new ValidationError({ field: receiptField, message: "receipt: send exactly one file" }))
      }
      return Effect.map(
        readFileLimited(part, maxReceiptBytes),
        (bytes): Receipt => ({ bytes, declaredType: part.contentType, fileName: part.name })
      )
    }
    return yield* Stream.runFoldEffect(limited, undefined as Receipt | undefined, collect).pipe(
      Effect.catchTag("MultipartError", (error) => Effect.fail(fromMultipartError(maxReceiptBytes)(error)))
    )
  })

/** Trader endpoints act for the session's trader only; the id never comes from the request. */
const currentTrader = Effect.flatMap(requireRole("trader"), (user) =>
  user.traderId === null
    ? Effect.fail(new Forbidden({ message: "this user has no trader account" }))
    : Effect.succeed({ user, traderId: user.traderId }))

export const LifecycleHandlers = HttpApiBuilder.group(JivaPayApi, "lifecycle", (handlers) =>
  Effect.gen(function*() {
    const lifecycle = yield* OrderStatusManager
    const orders = yield* OrderService
    const config = yield* AppConfig
    return handlers
      .handle("clientConfirmation", ({ path, payload, request }) =>
        Effect.gen(function*() {
          const store = yield* CurrentStore
          const receipt = yield* readReceipt(request, payload, config.maxReceiptBytes)
          yield* lifecycle.confirmByClient(store, path.id, receipt, { ipAddress: yield* currentClientIp })
          return yield* orders.get(store, path.id)
        }))
      .handle("listTraderOrders", ({ urlParams }) =>
        Effect.flatMap(currentTrader, ({ traderId }) => lifecycle.listTraderOrders(traderId, urlParams)))
      .handle("confirmByTrader", ({ path, payload, request }) =>
        Effect.gen(function*() {
          const trader = yield* currentTrader
          const receipt = yield* readReceipt(request, payload, config.maxReceiptBytes)
          const outcome = yield* lifecycle.confirmByTrader(trader, path.id, receipt, { ipAddress: yield* currentClientIp })
          return outcome.order
        }))
      .handle("cancelByTrader", ({ path, payload }) =>
        Effect.gen(function*() {
          const trader = yield* currentTrader
          const outcome = yield* lifecycle.cancel(
            LifecycleActor.Trader(trader),
            path.id,
            payload.reason,
            { ipAddress: yield* currentClientIp }
          )
          return outcome.order
        }))
      .handle("disputeByTrader", ({ path, payload }) =>
        Effect.gen(function*() {
          const trader = yield* currentTrader
          const outcome = yield* lifecycle.dispute(
            LifecycleActor.Trader(trader),
            path.id,
            payload.reason,
            { ipAddress: yield* currentClientIp }
          )
          return outcome.order
        }))
      .handle("adminTransition", ({ path, payload }) =>
        Effect.gen(function*() {
          const user = yield* requireRole("admin", "support")
          const outcome = yield* lifecycle.adminTransition(user, path.id, payload.status, payload.reason, {
            ipAddress: yield* currentClientIp
          })
          return outcome.order
        }))
  }))
