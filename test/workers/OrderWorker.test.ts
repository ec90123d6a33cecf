import { SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { Cause, Chunk, Context, Duration, Effect, Exit, Fiber, Layer, Logger, LogLevel, Ref, Schedule, Scope, Stream } from "effect"
import { OrderWakeup } from "../../src/layers/OrderWakeup.js"
import { atomic } from "../../src/services/Atomic.js"
import { OrderWorker } from "../../src/workers/OrderWorker.js"
import { supervise } from "../../src/workers/Supervisor.js"
import { createIncomingOrder, createRequisite, createStore, createTrader, resetBusinessTables } from "../support/fixtures.js"
import { ProcessorTestLive, resetSwitches, setRate, setSwitch } from "../support/orderTesting.js"

const quiet = Logger.withMinimumLogLevel(LogLevel.Error)

/** Polls `check` every 50 ms until it holds; fails the test after `timeout`. */
const eventually = <E, R>(what: string, check: Effect.Effect<boolean, E, R>, timeout = Duration.seconds(10)) =>
  check.pipe(
    Effect.repeat({ schedule: Schedule.spaced(Duration.millis(50)), until: (done) => done }),
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error(`timed out waiting for ${what}`) })
  )

const statuses = (ids: ReadonlyArray<number>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ id: number; status: string }>`SELECT id, status FROM incoming_orders WHERE id IN ${sql.in(ids)} ORDER BY id`
      .pipe(Effect.map((rows) => rows.map((row) => row.status))))

const world = Effect.gen(function*() {
  yield* resetBusinessTables
  yield* resetSwitches
  yield* setRate("92.50000000")
  const { storeId } = yield* createStore()
  for (let index = 0; index < 3; index++) {
    const { traderId } = yield* createTrader()
    yield* createRequisite(traderId)
  }
  return storeId
})

/** An order inserted the way the intake does it: the NOTIFY is part of the inserting transaction. */
const intake = (storeId: number) =>
  atomic(
    "test.intake",
    Effect.gen(function*() {
      const id = yield* createIncomingOrder({ storeId })
      yield* Effect.flatMap(OrderWakeup, (wakeup) => wakeup.notifyNewOrder(id))
      return id
    })
  )

/** A worker started inside the test, stopped when `scope` closes. */
const startWorker = (scope: Scope.Scope) =>
  Effect.map(Layer.buildWithScope(OrderWorker.Default, scope), (context) => Context.get(context, OrderWorker))

// A poll interval far longer than the tests: anything picked up quickly was woken by NOTIFY.
const settings = { workerPollInterval: Duration.minutes(10), workerConcurrency: 2, workerBatchSize: 4 }

layer(ProcessorTestLive(settings), { excludeTestServices: true })("OrderWorker", (it) => {
  it.effect("assigns a new order right after its NOTIFY, without waiting for the poll", () =>
    Effect.gen(function*() {
      const storeId = yield* world
      const scope = yield* Scope.make()
      const worker = yield* startWorker(scope)
      // The first pass runs at start-up; then give the LISTEN connection a moment to subscribe.
      yield* eventually("the first pick", Effect.map(worker.stats, (stats) => stats.loops >= 1))
      yield* Effect.sleep(Duration.millis(1500))

      const startedAtMs = Date.now()
      const ids = [yield* intake(storeId), yield* intake(storeId)]
      yield* eventually(
        "assignment",
        Effect.map(statuses(ids), (all) => all.every((status) => status === "assigned")),
        Duration.seconds(5)
      )
      const elapsedMs = Date.now() - startedAtMs
      expect(elapsedMs).toBeLessThan(5_000)
      expect((yield* worker.stats).assigned).toBe(2)
      yield* Scope.close(scope, Exit.void)
    }).pipe(quiet))

  it.effect("stops gracefully: in-flight orders finish, nothing more is picked", () =>
    Effect.gen(function*() {
      const storeId = yield* world
      // 400 ms per order, two at a time: a batch of four takes about 800 ms.
      yield* setSwitch("fraudDelay", Duration.millis(400))
      const ids: Array<number> = []
      for (let index = 0; index < 6; index++) ids.push(yield* createIncomingOrder({ storeId }))

      const scope = yield* Scope.make()
      const worker = yield* startWorker(scope)
      yield* eventually("a claimed batch", Effect.map(worker.stats, (stats) => stats.claimed >= 1))
      const stoppingAtMs = Date.now()
      yield* Scope.close(scope, Exit.void)
      const stopMs = Date.now() - stoppingAtMs

      const after = yield* statuses(ids)
      // The first batch (4 orders) was claimed and finished; the other 2 were never started.
      expect(after.filter((status) => status === "assigned")).toHaveLength(4)
      expect(after.filter((status) => status === "new")).toHaveLength(2)
      expect(stopMs).toBeGreaterThan(300)
      expect((yield* worker.stats).assigned).toBe(4)

      // Stopped means stopped: a wake-up reaches nobody.
      yield* Effect.sleep(Duration.millis(800))
      expect((yield* statuses(ids)).filter((status) => status === "new")).toHaveLength(2)
      // And the untouched orders are due for the next worker (no lease was taken on them).
      const sql = yield* SqlClient.SqlClient
      const [due] = yield* sql<{ due: number }>`SELECT count(*)::int AS due FROM incoming_orders
        WHERE status = 'new' AND next_attempt_at <= now()`
      expect(due!.due).toBe(2)
    }).pipe(quiet))

  it.effect("drains a backlog in consecutive full batches without waiting for the poll", () =>
    Effect.gen(function*() {
      const storeId = yield* world
      const ids: Array<number> = []
      for (let index = 0; index < 10; index++) ids.push(yield* createIncomingOrder({ storeId }))
      const scope = yield* Scope.make()
      yield* startWorker(scope)
      yield* eventually(
        "all assigned",
        Effect.map(statuses(ids), (all) => all.every((status) => status === "assigned"))
      )
      yield* Scope.close(scope, Exit.void)
    }).pipe(quiet))
})

describe("Supervisor", () => {
  it.live("restarts a crashing loop with backoff until it runs", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const loop = Effect.gen(function*() {
        const attempt = yield* Ref.updateAndGet(attempts, (n) => n + 1)
        if (attempt === 1) return yield* Effect.fail("first crash")
        if (attempt === 2) return yield* Effect.die("second crash (defect)")
        return "running"
      })
      const crashes = yield* Ref.make<ReadonlyArray<string>>([])
      const result = yield* supervise("test-loop", loop, {
        policy: Schedule.spaced(Duration.millis(10)),
        onCrash: (cause) => Ref.update(crashes, (all) => [...all, Cause.pretty(cause)])
      })
      expect(result).toBe("running")
      expect(yield* Ref.get(attempts)).toBe(3)
      expect(yield* Ref.get(crashes)).toHaveLength(2)
    }).pipe(quiet))

  it.live("does not restart an interrupted loop", () =>
    Effect.gen(function*() {
      const starts = yield* Ref.make(0)
      const fiber = yield* Effect.fork(supervise("test-loop", Effect.zipRight(Ref.update(starts, (n) => n + 1), Effect.never)))
      yield* Effect.sleep(Duration.millis(20))
      yield* Fiber.interrupt(fiber)
      expect(yield* Ref.get(starts)).toBe(1)
    }))
})

describe("OrderWakeup (embedded mode)", () => {
  it.live("delivers in-process wake-ups to every subscriber", () =>
    Effect.gen(function*() {
      const wakeup = yield* OrderWakeup
      const first = yield* Effect.fork(Stream.runCollect(Stream.take(wakeup.wakeups, 2)))
      const second = yield* Effect.fork(Stream.runCollect(Stream.take(wakeup.wakeups, 2)))
      yield* Effect.sleep(Duration.millis(20))
      yield* wakeup.notifyNewOrder(1)
      yield* wakeup.notifyNewOrder(2)
      expect(Chunk.size(yield* Fiber.join(first))).toBe(2)
      expect(Chunk.size(yield* Fiber.join(second))).toBe(2)
    }).pipe(Effect.provide(OrderWakeup.layerMemory)))
})
