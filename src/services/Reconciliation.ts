import { SqlClient } from "@effect/sql"
import { BigDecimal, Effect, Schema } from "effect"
import { DecimalFromNumeric, formatCrypto } from "../domain/Money.js"
import { atomic, dieOnInfrastructure } from "./Atomic.js"

export interface Difference {
  readonly account: string
  readonly expected: string
  readonly actual: string
}

export interface ReconciliationReport {
  readonly ok: boolean
  readonly differences: ReadonlyArray<Difference>
  readonly totals: { readonly stores: string; readonly traders: string; readonly platform: string; readonly externalNet: string }
}

const DifferenceRow = Schema.Struct({ account: Schema.String, expected: Schema.String, actual: Schema.String })
const TotalsRow = Schema.Struct({
  stores: DecimalFromNumeric,
  traders: DecimalFromNumeric,
  platform: DecimalFromNumeric,
  externalNet: DecimalFromNumeric
})

/** Reports at most this many differences: a broken ledger must not produce an unbounded response. */
const DIFFERENCES_MAX = 1000

/**
 * Recomputes every balance and hold from its history and checks the ledger's global equation
 * (stores + traders + platform = deposits − withdrawals). Read-only, on one REPEATABLE READ snapshot,
 * so concurrent activity cannot produce false differences.
 */
export class Reconciliation extends Effect.Service<Reconciliation>()("Reconciliation", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const accountDifferences = sql`
      WITH store_history AS (
        SELECT store_id, sum(delta) AS balance, sum(frozen_delta) AS frozen FROM balance_store_history GROUP BY store_id
      ), trader_history AS (
        SELECT trader_id, sum(delta) AS balance, sum(frozen_delta) AS frozen FROM balance_trader_crypto_history GROUP BY trader_id
      ), platform_history AS (
        SELECT coalesce(sum(delta), 0) AS balance FROM balance_platform_history
      ), open_holds AS (
        -- A hold not yet posted or voided must still be frozen on its account.
        SELECT h.order_id,
               CASE WHEN o.direction = 'payin' THEN 'trader:' || o.trader_id ELSE 'store:' || o.store_id END AS account,
               CASE WHEN o.direction = 'payin' THEN o.amount_crypto - o.trader_reward_crypto
                    ELSE o.amount_crypto + o.store_commission_crypto END AS amount
        FROM ledger_transfers h JOIN order_history o ON o.id = h.order_id
        WHERE h.kind = 'hold'
          AND NOT EXISTS (SELECT 1 FROM ledger_transfers x WHERE x.order_id = h.order_id AND x.kind IN ('post', 'void'))
      ), holds_by_account AS (
        SELECT account, sum(amount) AS frozen FROM open_holds GROUP BY account
      )
      SELECT 'store:' || b.store_id || ':balance' AS account, coalesce(h.balance, 0)::text AS expected, b.balance::text AS actual
        FROM balance_stores b LEFT JOIN store_history h ON h.store_id = b.store_id WHERE b.balance <> coalesce(h.balance, 0)
      UNION ALL
      SELECT 'store:' || b.store_id || ':frozen', coalesce(h.frozen, 0)::text, b.frozen::text
        FROM balance_stores b LEFT JOIN store_history h ON h.store_id = b.store_id WHERE b.frozen <> coalesce(h.frozen, 0)
      UNION ALL
      SELECT 'store:' || b.store_id || ':holds', coalesce(o.frozen, 0)::text, b.frozen::text
        FROM balance_stores b LEFT JOIN holds_by_account o ON o.account = 'store:' || b.store_id WHERE b.frozen <> coalesce(o.frozen, 0)
      UNION ALL
      SELECT 'trader:' || b.trader_id || ':balance', coalesce(h.balance, 0)::text, b.balance::text
        FROM balance_traders b LEFT JOIN trader_history h ON h.trader_id = b.trader_id WHERE b.balance <> coalesce(h.balance, 0)
      UNION ALL
      SELECT 'trader:' || b.trader_id || ':frozen', coalesce(h.frozen, 0)::text, b.frozen::text
        FROM balance_traders b LEFT JOIN trader_history h ON h.trader_id = b.trader_id WHERE b.frozen <> coalesce(h.frozen, 0)
      UNION ALL
      SELECT 'trader:' || b.trader_id || ':holds', coalesce(o.frozen, 0)::text, b.frozen::text
        FROM balance_traders b LEFT JOIN holds_by_account o ON o.account = 'trader:' || b.trader_id WHERE b.frozen <> coalesce(o.frozen, 0)
      UNION ALL
      SELECT 'platform:balance', h.balance::text, p.balance::text
        FROM balance_platform p CROSS JOIN platform_history h WHERE p.balance <> h.balance
      LIMIT ${DIFFERENCES_MAX}`.pipe(Effect.flatMap(Schema.decodeUnknown(Schema.Array(DifferenceRow))))

    /** Completed ⇔ posted, and every posting moves money that sums to zero. */
    const orderDifferences = sql`
      SELECT 'order:' || o.id || ':posting' AS account,
             CASE WHEN o.status = 'completed' THEN 'posted' ELSE 'not posted' END AS expected,
             CASE WHEN p.id IS NULL THEN 'not posted' ELSE 'posted' END AS actual
      FROM order_history o
      LEFT JOIN ledger_transfers p ON p.order_id = o.id AND p.kind = 'post'
      WHERE (o.status = 'completed') <> (p.id IS NOT NULL)
      UNION ALL
      SELECT 'transfer:' || t.id || ':sum', '0', (
          coalesce((SELECT sum(delta) FROM balance_store_history WHERE transfer_id = t.id), 0)
        + coalesce((SELECT sum(delta) FROM balance_trader_crypto_history WHERE transfer_id = t.id), 0)
        + coalesce((SELECT sum(delta) FROM balance_platform_history WHERE transfer_id = t.id), 0))::text
      FROM ledger_transfers t
      WHERE t.kind = 'post' AND (
          coalesce((SELECT sum(delta) FROM balance_store_history WHERE transfer_id = t.id), 0)
        + coalesce((SELECT sum(delta) FROM balance_trader_crypto_history WHERE transfer_id = t.id), 0)
        + coalesce((SELECT sum(delta) FROM balance_platform_history WHERE transfer_id = t.id), 0)) <> 0
      LIMIT ${DIFFERENCES_MAX}`.pipe(Effect.flatMap(Schema.decodeUnknown(Schema.Array(DifferenceRow))))

    const totals = sql`
      SELECT (SELECT coalesce(sum(balance), 0) FROM balance_stores) AS stores,
             (SELECT coalesce(sum(balance), 0) FROM balance_traders) AS traders,
             (SELECT balance FROM balance_platform WHERE id = 1) AS platform,
             (SELECT coalesce(sum(delta), 0) FROM balance_external_history) AS external_net`.pipe(
      Effect.flatMap(Schema.decodeUnknown(Schema.Array(TotalsRow))),
      Effect.map((rows) => rows[0]!)
    )

    const run = Effect.fn("Reconciliation.run")(function*() {
      return yield* atomic("reconciliation", Effect.gen(function*() {
        yield* sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY`
        const differences = [...(yield* accountDifferences), ...(yield* orderDifferences)].slice(0, DIFFERENCES_MAX)
        const sums = yield* totals
        const held = BigDecimal.sumAll([sums.stores, sums.traders, sums.platform])
        const balanced = BigDecimal.equals(held, sums.externalNet)
        const allDifferences: Array<Difference> = balanced
          ? differences
          : [...differences, { account: "ledger:total", expected: formatCrypto(sums.externalNet), actual: formatCrypto(held) }]
        const report: ReconciliationReport = {
          ok: allDifferences.length === 0,
          differences: allDifferences,
          totals: {
            stores: formatCrypto(sums.stores),
            traders: formatCrypto(sums.traders),
            platform: formatCrypto(sums.platform),
            externalNet: formatCrypto(sums.externalNet)
          }
        }
        return report
      }))
    }, dieOnInfrastructure)

    return { run } as const
  })
}) {}
