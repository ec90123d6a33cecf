import { Duration, Effect, Layer, Option, Schedule } from "effect"
import { AppConfig } from "../layers/Config.js"
import { ErrorReporter } from "../services/ErrorReporter.js"
import { ReferenceData } from "../services/ReferenceData.js"

/** Restart policy of the refresh loop: it should never die, but if it does it comes back. */
const refresherRestartPolicy = Schedule.exponential(Duration.seconds(1), 2).pipe(
  Schedule.union(Schedule.spaced(Duration.minutes(1)))
)

/**
 * Every RATE_REFRESH_INTERVAL pulls each active pair from RATE_PROVIDER_URL (when configured) and
 * alerts on a pair whose newest rate is older than RATE_MAX_AGE: those orders wait, unpriced.
 */
export const refreshRatesOnce = Effect.gen(function*() {
  const config = yield* AppConfig
  const referenceData = yield* ReferenceData
  const reporter = yield* ErrorReporter
  const pairs = yield* referenceData.activePairs
  for (const { fiat, crypto } of pairs) {
    if (Option.isSome(config.rateProviderUrl)) {
      yield* referenceData.refreshFromProvider(config.rateProviderUrl.value, fiat, crypto).pipe(
        Effect.tap((rate) => Effect.logInfo(`rate ${fiat}/${crypto} refreshed from provider`, rate.rate)),
        Effect.catchAll((error) => Effect.logWarning(`rate provider failed for ${fiat}/${crypto}; keeping the last value`, error.message))
      )
    }
    yield* referenceData.currentRate(fiat, crypto).pipe(
      Effect.catchTag("RateUnavailable", (error) =>
        reporter.reportCriticalError(error, { component: "RateRefresher", pair: error.pair }))
    )
  }
  return pairs.length
}).pipe(Effect.withSpan("RateRefresher.refreshOnce"))

export const RateRefresherLive = Layer.scopedDiscard(
  Effect.gen(function*() {
    const config = yield* AppConfig
    const loop = refreshRatesOnce.pipe(
      Effect.catchAllCause((cause) => Effect.logError("rate refresh round failed", cause)),
      Effect.repeat(Schedule.spaced(config.rateRefreshInterval))
    )
    yield* Effect.forkScoped(loop.pipe(Effect.retry(refresherRestartPolicy)))
  })
)
