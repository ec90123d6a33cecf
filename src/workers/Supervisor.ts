import { Cause, Duration, Effect, Schedule } from "effect"

/**
 * Restarting a crashed worker loop: quickly at first (a dropped connection is usually back within a
 * second), then at most every 30 s; after 5 quiet minutes a new crash starts from the short delay again.
 */
export const workerRestartPolicy = Schedule.exponential(Duration.millis(200), 2).pipe(
  Schedule.union(Schedule.spaced(Duration.seconds(30))),
  Schedule.jittered,
  Schedule.resetAfter(Duration.minutes(5))
)

/**
 * Runs a background loop and restarts it with `policy` whenever it fails or dies, forever. Only
 * interruption (shutdown) ends it; a loop that returns normally is done on purpose.
 */
export const supervise = <A, E, R>(
  name: string,
  loop: Effect.Effect<A, E, R>,
  options: {
    readonly policy?: Schedule.Schedule<unknown, unknown>
    /** Told about every crash (e.g. the ErrorReporter); must not fail. */
    readonly onCrash?: (cause: Cause.Cause<E>) => Effect.Effect<void>
  } = {}
): Effect.Effect<A, never, R> =>
  loop.pipe(
    Effect.sandbox,
    Effect.tapError((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.void
        : Effect.zipRight(
          Effect.logError(`${name} crashed; restarting with backoff`, cause),
          options.onCrash === undefined ? Effect.void : options.onCrash(cause)
        )
    ),
    Effect.retry({
      schedule: options.policy ?? workerRestartPolicy,
      while: (cause) => !Cause.isInterruptedOnly(cause)
    }),
    // Only an interruption gets here (the policy is endless): hand it on as one.
    Effect.catchAll((cause) => Effect.failCause(cause)),
    Effect.catchAllCause((cause) => Cause.isInterruptedOnly(cause) ? Effect.interrupt : Effect.die(Cause.squash(cause))),
    Effect.annotateLogs("worker", name)
  )
