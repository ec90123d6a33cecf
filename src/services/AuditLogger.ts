import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export interface AuditEntry {
  readonly action: string
  readonly userId?: number | null | undefined
  readonly userRole?: string | null | undefined
  readonly targetEntity?: string | undefined
  readonly targetId?: string | number | undefined
  readonly details?: Record<string, unknown> | undefined
  readonly ipAddress?: string | null | undefined
}

/**
 * Writes audit rows in the caller's transaction, inside a savepoint: the row commits or rolls back
 * with the action it describes, and a failed audit write is logged without aborting that action.
 */
export class AuditLogger extends Effect.Service<AuditLogger>()("AuditLogger", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const logAction = Effect.fn("AuditLogger.logAction")(function*(entry: AuditEntry) {
      const row = {
        action: entry.action,
        userId: entry.userId ?? null,
        userRole: entry.userRole ?? null,
        targetEntity: entry.targetEntity ?? null,
        targetId: entry.targetId === undefined ? null : String(entry.targetId),
        details: JSON.stringify(entry.details ?? {}),
        ipAddress: entry.ipAddress ?? null
      }
      yield* sql.withTransaction(sql`INSERT INTO audit_logs ${sql.insert(row)}`).pipe(
        Effect.catchAllCause((cause) =>
          Effect.logError("audit write failed; the action goes on", cause).pipe(
            Effect.annotateLogs({ auditAction: entry.action })
          )
        )
      )
    })

    return { logAction } as const
  })
}) {}
