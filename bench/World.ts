import type { PgClient } from "@effect/sql-pg"
import { BigDecimal, Effect } from "effect"
import { randomBytes } from "node:crypto"
import { formatFiat } from "../src/domain/Money.js"
import { NEW_ORDER_CHANNEL } from "../src/layers/OrderWakeup.js"
import { type NewOrder, requestHashOf } from "../src/services/OrderService.js"
import { callExpecting, type JsonClient } from "./Http.js"

/**
 * The world the benchmark runs in, built through the admin and trader APIs like an operator would:
 * one RUB store with a large deposit, traders with two card requisites each, large limits and
 * deposits, all in work, and a RUB/USDT rate. Limits are far above what a run can use, so every
 * order can be assigned and the numbers measure the machinery, not the world running out.
 */

export interface WorldSettings {
  readonly traders: number
  readonly requisitesPerTrader: number
}

export interface World {
  readonly storeId: number
  readonly apiKey: string
  readonly traders: number
  readonly requisites: number
}

const banks = ["sber", "tinkoff", "alfa"] as const
const password = "bench-password-1234"
// Ample for every order of a run (tens of thousands at up to 20 000 RUB ≈ 216 USDT each).
const traderDepositUsdt = "5000000"
const storeDepositUsdt = "50000000"
const setupConcurrency = 4

const login = (client: JsonClient, email: string, secret: string) =>
  Effect.map(
    callExpecting(client, 200, "POST", "/api/auth/login", { body: { email, password: secret } }),
    (body) => body.token as string
  )

export const buildWorld = (client: JsonClient, admin: { readonly email: string; readonly password: string }, settings: WorldSettings) =>
  Effect.gen(function*() {
    const token = yield* login(client, admin.email, admin.password)
    const merchant = yield* callExpecting(client, 201, "POST", "/api/admin/merchants", {
      token,
      body: { email: "merchant@bench.test", password, name: "Bench merchant" }
    })
    const store = yield* callExpecting(client, 201, "POST", "/api/admin/stores", {
      token,
      body: {
        merchantId: merchant.id,
        name: "Bench store",
        fiatCurrency: "RUB",
        payinCommissionPct: "2.5",
        payoutCommissionPct: "3",
        processingTtlSeconds: 3600
      }
    })
    yield* callExpecting(client, 200, "POST", `/api/admin/stores/${store.id}/deposit`, {
      token,
      body: { amount: storeDepositUsdt, note: "bench" }
    })
    yield* callExpecting(client, 200, "PUT", "/api/admin/exchange-rates", {
      token,
      body: { fiat: "RUB", crypto: "USDT", rate: "92.50000000" }
    })
    yield* Effect.forEach(Array.from({ length: settings.traders }, (_, index) => index), (index) =>
      Effect.gen(function*() {
        const email = `trader-${index}@bench.test`
        const trader = yield* callExpecting(client, 201, "POST", "/api/admin/traders", {
          token,
          body: { email, password, payinRewardPct: "1.5", payoutRewardPct: "1" }
        })
        yield* callExpecting(client, 200, "POST", `/api/admin/traders/${trader.id}/deposit`, {
          token,
          body: { amount: traderDepositUsdt, note: "bench" }
        })
        const traderToken = yield* login(client, email, password)
        for (let requisite = 0; requisite < settings.requisitesPerTrader; requisite++) {
          yield* callExpecting(client, 201, "POST", "/api/trader/requisites", {
            token: traderToken,
            body: {
              paymentMethod: "card",
              bankCode: banks[(index * settings.requisitesPerTrader + requisite) % banks.length],
              fiatCurrency: "RUB",
              details: `2200 ${String(1000 + index).padStart(4, "0")} 0000 ${String(requisite).padStart(4, "0")}`,
              holderName: `Trader ${index}`,
              settings: {
                payinEnabled: true,
                payoutEnabled: true,
                minAmount: "100.00",
                maxAmount: "100000.00",
                dailyTurnoverLimit: "1000000000.00",
                monthlyTurnoverLimit: "1000000000.00",
                maxOrdersPerDay: 1_000_000,
                maxOpenOrders: 1_000_000
              }
            }
          })
        }
        yield* callExpecting(client, 200, "POST", "/api/trader/work", { token: traderToken, body: { inWork: true } })
      }), { concurrency: setupConcurrency, discard: true })
    return {
      storeId: store.id as number,
      apiKey: store.apiKey as string,
      traders: settings.traders,
      requisites: settings.traders * settings.requisitesPerTrader
    } satisfies World
  })

// ---------------------------------------------------------------------------------------------
// Orders

export { seededRandom } from "../test/support/random.js"

export interface OrderBody {
  readonly merchantOrderId: string
  readonly direction: "payin" | "payout"
  readonly amount: string
  readonly currency: "RUB"
  readonly paymentMethod: "card"
  readonly bankCode?: string
  readonly payoutDestination?: { readonly details: string; readonly holderName: string; readonly bankCode: string }
}

/**
 * The order mix: 80 % PayIn, 20 % PayOut (every PayOut holds the one store's balance row, as in
 * production with a busy store), amounts 500–20 000 RUB, half with a bank code. No customerId and
 * no clientIp: the default fraud velocity rules would otherwise send a load from one IP to review.
 */
export const orderBody = (random: () => number, merchantOrderId: string): OrderBody => {
  const direction = random() < 0.8 ? "payin" as const : "payout" as const
  const amount = (500 + Math.floor(random() * 1_950_000) / 100).toFixed(2)
  const bankCode = random() < 0.5 ? banks[Math.floor(random() * banks.length)] : undefined
  return {
    merchantOrderId,
    direction,
    amount,
    currency: "RUB",
    paymentMethod: "card",
    ...(bankCode === undefined ? {} : { bankCode }),
    ...(direction === "payout"
      ? { payoutDestination: { details: "2202000000000000", holderName: "PETR PETROV", bankCode: "sber" } }
      : {})
  }
}

export const uniqueRunTag = () => randomBytes(3).toString("hex")

// One INSERT per this many rows: well under PostgreSQL's 65 535 bind parameters (13 per row).
const insertChunkRows = 1_000

/**
 * Orders straight into `incoming_orders`, row for row what `OrderService.create` writes (same
 * columns, same request hash), in one transaction that ends with the wake-up NOTIFY the API sends,
 * so every worker sees all of them at the same instant. Returns the ids.
 */
export const insertOrders = (sql: PgClient.PgClient, storeId: number, orders: ReadonlyArray<OrderBody>) =>
  sql.withTransaction(Effect.gen(function*() {
    const ids: Array<number> = []
    for (let start = 0; start < orders.length; start += insertChunkRows) {
      const rows = orders.slice(start, start + insertChunkRows).map((order) => {
        const newOrder: NewOrder = { ...order, amount: BigDecimal.unsafeFromString(order.amount) }
        return {
          storeId,
          merchantOrderId: order.merchantOrderId,
          requestHash: requestHashOf(newOrder),
          direction: order.direction,
          amount: formatFiat(newOrder.amount),
          currency: order.currency,
          paymentMethod: order.paymentMethod,
          bankCode: order.bankCode ?? null,
          customerId: null,
          clientIp: null,
          returnUrl: null,
          callbackUrl: null,
          payoutDestination: order.payoutDestination === undefined ? null : JSON.stringify(order.payoutDestination)
        }
      })
      const inserted = yield* sql<{ id: number }>`INSERT INTO incoming_orders ${sql.insert(rows)} RETURNING id`
      ids.push(...inserted.map((row) => Number(row.id)))
    }
    yield* sql`SELECT pg_notify(${NEW_ORDER_CHANNEL}, 'bench')`
    return ids
  }))
