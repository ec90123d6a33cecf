import { BigDecimal, Duration, Effect, Schema } from "effect"
import { RateUnavailable } from "../domain/Errors.js"
import { Rate } from "../domain/Money.js"

const PROVIDER_TIMEOUT = Duration.seconds(5)
const MAX_RESPONSE_BYTES = 64 * 1024

/** Accepts `{ "price": "92.5" }` (Binance ticker) or `{ "rate": "92.5" }`; numbers are read via their text. */
const ProviderResponse = Schema.Union(
  Schema.Struct({ price: Schema.Union(Schema.String, Schema.Number) }),
  Schema.Struct({ rate: Schema.Union(Schema.String, Schema.Number) })
)

/** A JSON number's text can carry more digits than a rate keeps; the provider's value is rounded once. */
const toRateString = (raw: string | number) => {
  const text = typeof raw === "number" ? raw.toString() : raw.trim()
  const normalized = BigDecimal.fromString(text)
  if (normalized._tag === "None") return text
  return BigDecimal.format(BigDecimal.round(normalized.value, { scale: 8, mode: "half-even" }))
}

/**
 * Fetches `fiat/crypto` from RATE_PROVIDER_URL, whose `{fiat}` and `{crypto}` placeholders are filled in
 * (e.g. `https://api.binance.com/api/v3/ticker/price?symbol={crypto}{fiat}`).
 */
export const fetchProviderRate = (urlTemplate: string, fiat: string, crypto: string) =>
  Effect.gen(function*() {
    const pair = `${fiat}/${crypto}`
    const unavailable = (message: string) => new RateUnavailable({ pair, message: `rate provider: ${message}` })
    const url = urlTemplate.replaceAll("{fiat}", encodeURIComponent(fiat)).replaceAll("{crypto}", encodeURIComponent(crypto))
    const body = yield* Effect.tryPromise({
      try: async (signal) => {
        const response = await fetch(url, { signal, headers: { accept: "application/json" } })
        if (!response.ok) throw new Error(`HTTP ${response.status}`)
        const text = await response.text()
        if (text.length > MAX_RESPONSE_BYTES) throw new Error("response too large")
        return JSON.parse(text) as unknown
      },
      catch: (cause) => unavailable(String(cause instanceof Error ? cause.message : cause))
    }).pipe(
      Effect.timeoutFail({ duration: PROVIDER_TIMEOUT, onTimeout: () => unavailable("timed out") })
    )
    const decoded = yield* Schema.decodeUnknown(ProviderResponse)(body).pipe(
      Effect.mapError(() => unavailable("unexpected response shape"))
    )
    const raw = "price" in decoded ? decoded.price : decoded.rate
    return yield* Schema.decodeUnknown(Rate)(toRateString(raw)).pipe(
      Effect.mapError(() => unavailable(`not a usable rate: ${String(raw).slice(0, 40)}`))
    )
  })
