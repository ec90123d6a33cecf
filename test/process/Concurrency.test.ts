import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Context, Duration, Effect, Fiber, Layer, Logger, LogLevel, Ref } from "effect"
import { AppConfig } from "../../src/layers/Config.js"
import { KeyValue } from "../../src/layers/KeyValue.js"
import { OrderWakeup } from "../../src/layers/OrderWakeup.js"
import { ErrorReporter } from "../../src/services/ErrorReporter.js"
import { FraudDetector } from "../../src/services/FraudDetector.js"
import { OrderProcessor } from "../../src/services/OrderProcessor.js"
import { OrderWorker } from "../../src/workers/OrderWorker.js"
import { createRequisite, createStore, createTrader } from "../support/fixtures.js"
import {
  checkInvariants,
  eventually,
  insertIncomingOrders,
  ScratchDatabase,
  ScratchDatabaseLive,
  seededRandom,
  spawnWorker,
  workerEnv
} from "../support/workerProcess.js"

/**
 * SPEC §8, correctness under concurrency: 600 orders (PayIn and PayOut) against a world with tight
 * limits, deposits and store balances, processed at once by two worker processes, a worker in this
 * process and a swarm of fibers that process random orders regardless of the queue. Afterwards the
 * rows must prove that nothing was assigned twice, no limit was exceeded and every hold is accounted for.
 */

const ORDER_COUNT = 600
const WORKER_PROCESSES = 2
const CHAOS_FIBERS = 16
const RUN_TIMEOUT = Duration.seconds(120)

// Short retries so that orders nobody can take fail within the run instead of waiting for minutes.
const settings = {
  workerConcurrency: 8,
  workerBatchSize: 16,
  workerPollInterval: Duration.millis(500),
  orderMaxRetries: 2,
  retryBaseDelay: Duration.millis(200),
  retryMaxDelay: Duration.seconds(1)
}

const childEnv = workerEnv({
  WORKER_CONCURRENCY: settings.workerConcurrency,
  WORKER_BATCH_SIZE: settings.workerBatchSize,
  WORKER_POLL_INTERVAL: "500 millis",
  ORDER_MAX_RETRIES: settings.orderMaxRetries,
  ORDER_RETRY_BASE_DELAY: "200 millis",
  ORDER_RETRY_MAX_DELAY: "1 seconds",
  // Concurrency 8 plus the pick loop's own queries.
  DATABASE_MAX_CONNECTIONS: 9
})

const banks = ["sber", "tinkoff", "alfa"] as const
const money = (value: number, decimals: number) => value.toFixed(decimals)

/** Traders with deposits that run out, requisites with limits that bind, stores that cannot pay every PayOut. */
const buildWorld = Effect.gen(function*() {
  const random = seededRandom(20261126)
  const pick = <A>(items: ReadonlyArray<A>) => items[Math.floor(random() * items.length)]!
  const sql = yield* SqlClient.SqlClient
  yield* sql`INSERT INTO exchange_rates (fiat_code, crypto_code, rate, source) VALUES ('RUB', 'USDT', '92.50000000', 'test')`
  const stores = [
    (yield* createStore({ balance: "3000.000000", callbackUrl: "https://merchant.example/a" })).storeId,
    (yield* createStore({ balance: "400.000000" })).storeId
  ]
  for (let trader = 0; trader < 16; trader++) {
    const { traderId } = yield* createTrader({
      balance: money(200 + Math.floor(random() * 1500), 6),
      priority: Math.floor(random() * 3)
    })
    for (let requisite = 0; requisite < 2; requisite++) {
      const dailyTurnoverLimit = 20_000 + Math.floor(random() * 100_000)
      yield* createRequisite(traderId, {
        bankCode: pick(banks),
        settings: {
          payinEnabled: random() < 0.85,
          payoutEnabled: random() < 0.6,
          minAmount: "100.00",
          maxAmount: money(5_000 + Math.floor(random() * 15_000), 2),
          dailyTurnoverLimit: money(dailyTurnoverLimit, 2),
          monthlyTurnoverLimit: money(Math.floor(dailyTurnoverLimit * 1.5), 2),
          maxOrdersPerDay: 5 + Math.floor(random() * 25),
          maxOpenOrders: 3 + Math.floor(random() * 22)
        }
      })
    }
  }
  return Array.from({ length: ORDER_COUNT }, () => ({
    storeId: pick(stores),
    direction: random() < 0.6 ? "payin" as const : "payout" as const,
    amount: money(200 + Math.floor(random() * 880_000) / 100, 2),
    bankCode: random() < 0.5 ? null : pick(banks)
  }))
})

const ProcessLayer = OrderProcessor.Default.pipe(
  Layer.provide(FraudDetector.Default),
  Layer.provideMerge(ErrorReporter.Default),
  Layer.provideMerge(Layer.mergeAll(OrderWakeup.layer, KeyValue.layerMemory)),
  // Connections are counted: the server (max_connections 100) is shared with the other suites.
  Layer.provideMerge(ScratchDatabaseLive({ maxConnections: 12 })),
  Layer.provideMerge(AppConfig.layerWith(settings))
)

const unsettled = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ count: number }>`SELECT count(*)::int AS count FROM incoming_orders WHERE status IN ('new', 'retrying')`,
    (rows) => rows[0]!.count
  ))

layer(ProcessLayer, { excludeTestServices: true })("Concurrency (worker processes)", (it) => {
  it.effect(`${ORDER_COUNT} orders, ${WORKER_PROCESSES} worker processes and many fibers: each assigned at most once, no limit exceeded`, () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { url } = yield* ScratchDatabase
      const orders = yield* buildWorld
      // Everything started below (child processes included) is stopped when this scope closes, pass or fail.
      {
        // Separate OS processes running the production entry point.
        const children = yield* Effect.forEach(
          Array.from({ length: WORKER_PROCESSES }),
          () => spawnWorker(url, childEnv),
          { concurrency: "unbounded" }
        )
        yield* Effect.forEach(children, (child) => Effect.timeout(child.ready, Duration.seconds(60)), { discard: true })

        // One more worker in this process, and fibers that process random orders out of turn.
        const inProcess = Context.get(yield* Layer.build(OrderWorker.Default), OrderWorker)
        const processor = yield* OrderProcessor
        const ids = yield* Ref.make<ReadonlyArray<number>>([])
        const chaosAttempts = yield* Ref.make(0)
        const chaos = yield* Effect.forkScoped(
          Effect.forEach(Array.from({ length: CHAOS_FIBERS }), () =>
            Effect.gen(function*() {
              while (true) {
                const known = yield* Ref.get(ids)
                if (known.length === 0) {
                  yield* Effect.sleep(Duration.millis(10))
                  continue
                }
                yield* processor.processIncomingOrder(known[Math.floor(Math.random() * known.length)]!)
                yield* Ref.update(chaosAttempts, (n) => n + 1)
              }
            }), { concurrency: "unbounded", discard: true })
        )

        // All orders arrive at once, with the NOTIFY of their transaction.
        const startedAtMs = Date.now()
        const inserted = yield* sql.withTransaction(Effect.gen(function*() {
          const inserted = yield* insertIncomingOrders(orders)
          yield* sql`SELECT pg_notify('jivapay_new_order', 'batch')`
          return inserted
        }))
        yield* Ref.set(ids, inserted)
        expect(inserted).toHaveLength(ORDER_COUNT)

        yield* eventually("every order settled", Effect.map(unsettled, (count) => count === 0), RUN_TIMEOUT)
        const elapsedMs = Date.now() - startedAtMs
        yield* Fiber.interrupt(chaos)

        // A worker process stops gracefully on SIGTERM (NodeRuntime interrupts, the worker's scope closes).
        yield* children[0]!.kill("SIGTERM")
        const exit = yield* Effect.timeout(children[0]!.exited, Duration.seconds(20))
        expect(exit).toBe("exit 0")

        const result = yield* checkInvariants
        const workerStats = yield* inProcess.stats
        const [attempts] = yield* sql<{ attempts: number }>`SELECT (sum(retry_count) + count(*) FILTER (WHERE status = 'assigned'))::int
          AS attempts FROM incoming_orders`
        const assigned = result.incoming.assigned ?? 0
        console.log(JSON.stringify({
          orders: ORDER_COUNT,
          incoming: result.incoming,
          elapsedMs,
          assignedPerSecond: Math.round(assigned / (elapsedMs / 1000)),
          recordedAttemptsPerSecond: Math.round((attempts?.attempts ?? 0) / (elapsedMs / 1000)),
          inProcessWorker: workerStats,
          chaosAttempts: yield* Ref.get(chaosAttempts)
        }))

        expect(result.violations).toEqual([])
        expect(result.orders).toBe(assigned)
        // The world is built so that limits, deposits and store balances all bind: both outcomes occur.
        expect(assigned).toBeGreaterThan(50)
        expect(result.incoming.failed ?? 0).toBeGreaterThan(0)
        expect(assigned + (result.incoming.failed ?? 0)).toBe(ORDER_COUNT)
      }
    }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error)), 180_000)
})
