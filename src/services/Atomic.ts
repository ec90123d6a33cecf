import { SqlClient, SqlError } from "@effect/sql"
import { Cause, Effect, Exit, Option, ParseResult } from "effect"
import { Conflict, NotFound, ValidationError } from "../domain/Errors.js"

/**
 * One transaction with its begin, COMMIT and ROLLBACK (with the cause) logged and traced.
 * Nested calls become savepoints. Interruption rolls back: `withTransaction` owns the connection
 * for the whole scope and releases it with ROLLBACK unless the body succeeded.
 */
export const atomic = <A, E, R>(name: string, body: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* sql.withTransaction(Effect.zipRight(Effect.logDebug("transaction begin"), body)).pipe(
      Effect.onExit((exit) =>
        Exit.match(exit, {
          onSuccess: () => Effect.logDebug("transaction COMMIT"),
          onFailure: (cause) =>
            Cause.isInterruptedOnly(cause)
              ? Effect.logWarning("transaction ROLLBACK (interrupted)")
              : Effect.logWarning("transaction ROLLBACK", Cause.squash(cause))
        })
      ),
      Effect.annotateLogs("transaction", name),
      Effect.withSpan(`atomic.${name}`)
    )
  })

/** The PostgreSQL error behind a SqlError, when there is one. */
export interface PgErrorInfo {
  readonly code: string
  readonly constraint: string | undefined
  readonly detail: string | undefined
}

export const pgErrorInfo = (error: SqlError.SqlError): Option.Option<PgErrorInfo> => {
  const cause = error.cause as { code?: unknown; constraint?: unknown; detail?: unknown } | undefined
  if (cause === undefined || cause === null || typeof cause.code !== "string") return Option.none()
  return Option.some({
    code: cause.code,
    constraint: typeof cause.constraint === "string" ? cause.constraint : undefined,
    detail: typeof cause.detail === "string" ? cause.detail : undefined
  })
}

export const UNIQUE_VIOLATION = "23505"
export const FOREIGN_KEY_VIOLATION = "23503"
export const CHECK_VIOLATION = "23514"
export const SERIALIZATION_FAILURE = "40001"
export const DEADLOCK_DETECTED = "40P01"

export const isUniqueViolation = (error: SqlError.SqlError, constraint?: string) =>
  Option.exists(pgErrorInfo(error), (info) =>
    info.code === UNIQUE_VIOLATION && (constraint === undefined || info.constraint === constraint))

/**
 * Repositories' mapping of the database's refusals into domain errors: a duplicate is a Conflict,
 * a dangling reference is a ValidationError (the caller named something that does not exist).
 * Anything else stays a SqlError, which is a 500 and an alert.
 */
export const mapConstraintErrors = (entity: string) =>
<A, E, R>(effect: Effect.Effect<A, E | SqlError.SqlError, R>) =>
  Effect.catchIf(
    effect,
    (error): error is SqlError.SqlError =>
      error instanceof SqlError.SqlError &&
      Option.exists(pgErrorInfo(error), (info) =>
        [UNIQUE_VIOLATION, FOREIGN_KEY_VIOLATION, CHECK_VIOLATION].includes(info.code)),
    (error): Effect.Effect<never, Conflict | ValidationError> => {
      const info = Option.getOrThrow(pgErrorInfo(error))
      if (info.code === UNIQUE_VIOLATION) {
        return Effect.fail(new Conflict({ entity, message: `${entity} already exists (${info.constraint ?? "unique"})` }))
      }
      if (info.code === FOREIGN_KEY_VIOLATION) {
        return Effect.fail(
          new ValidationError({ message: `${entity} refers to something that does not exist (${info.constraint ?? "reference"})` })
        )
      }
      return Effect.fail(new ValidationError({ message: `${entity} violates ${info.constraint ?? "a check constraint"}` }))
    }
  )

/** A missing row as a typed 404. */
export const orNotFound = (entity: string, id: unknown) =>
<A, E, R>(effect: Effect.Effect<Option.Option<A>, E, R>) =>
  Effect.flatMap(effect, Option.match({
    onNone: () => Effect.fail(new NotFound({ entity, message: `${entity} ${String(id)} not found` })),
    onSome: Effect.succeed
  }))

/**
 * SQL and row-decoding failures that no caller can handle become defects: the HTTP layer answers 500
 * and the ErrorReporter sees them; domain errors stay typed.
 */
export const dieOnInfrastructure = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, Exclude<E, SqlError.SqlError | ParseResult.ParseError>, R> =>
  Effect.catchIf(
    effect,
    (error): error is Extract<E, SqlError.SqlError | ParseResult.ParseError> =>
      error instanceof SqlError.SqlError || ParseResult.isParseError(error),
    (error) => Effect.die(error)
  ) as never
