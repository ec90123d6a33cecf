import { SqlClient } from "@effect/sql"
import { BigDecimal, Context, Duration, Effect, Layer, Ref } from "effect"
import type { UserId } from "../../src/domain/Ids.js"
import type { UserPrincipal } from "../../src/domain/Principal.js"
import { AppConfig, type AppSettings } from "../../src/layers/Config.js"
import { KeyValue } from "../../src/layers/KeyValue.js"
import { OrderWakeup } from "../../src/layers/OrderWakeup.js"
import { AuditLogger } from "../../src/services/AuditLogger.js"
import { BalanceManager } from "../../src/services/BalanceManager.js"
import { CallbackOutbox } from "../../src/services/CallbackOutbox.js"
import { ErrorReporter } from "../../src/services/ErrorReporter.js"
import { FraudDetector, type FraudOrderInput, type FraudResult } from "../../src/services/FraudDetector.js"
import { OrderProcessor } from "../../src/services/OrderProcessor.js"
import { ReferenceData } from "../../src/services/ReferenceData.js"
import { RequisiteSelector } from "../../src/services/RequisiteSelector.js"
import { TestDatabaseLive } from "./TestDatabase.js"

/**
 * Layers and switches shared by the OrderProcessor and OrderWorker suites: the processor with its
 * real dependencies on a scratch database, except a FraudDetector and a callback outbox whose
 * behaviour a test can change while the layer is built once.
 */

export type FraudMode = "allow" | "deny" | "review" | "die"

export interface Switches {
  readonly fraudMode: Ref.Ref<FraudMode>
  /** Added to every fraud check: makes processing slow on purpose (worker shutdown tests). */
  readonly fraudDelay: Ref.Ref<Duration.Duration>
  /** When set, the outbox dies on this event: a failure after the hold was placed. */
  readonly outboxDiesOn: Ref.Ref<string | null>
}

export class TestSwitches extends Context.Tag("TestSwitches")<TestSwitches, Switches>() {}

const SwitchesLive = Layer.effect(
  TestSwitches,
  Effect.all({
    fraudMode: Ref.make<FraudMode>("allow"),
    fraudDelay: Ref.make(Duration.zero),
    outboxDiesOn: Ref.make<string | null>(null)
  })
)

/** Only `checkIncomingOrder` is used by the processor; the rest of the detector is not under test here. */
const FraudStub = Layer.effect(
  FraudDetector,
  Effect.gen(function*() {
    const switches = yield* TestSwitches
    const checkIncomingOrder = (_input: FraudOrderInput) =>
      Effect.gen(function*() {
        yield* Effect.sleep(yield* Ref.get(switches.fraudDelay))
        const mode = yield* Ref.get(switches.fraudMode)
        switch (mode) {
          case "allow":
            return { decision: "ALLOW", rule: null, reason: "test: allowed" } satisfies FraudResult
          case "deny":
            return { decision: "DENY", rule: "blacklist:customer_id", reason: "test: denied" } satisfies FraudResult
          case "review":
            return { decision: "REQUIRE_MANUAL_REVIEW", rule: "ip_orders_per_minute", reason: "test: review" } satisfies FraudResult
          case "die":
            return yield* Effect.dieMessage("test: fraud detector exploded")
        }
      })
    return FraudDetector.make({ checkIncomingOrder } as unknown as Parameters<typeof FraudDetector.make>[0])
  })
)

/** The real outbox, with a failpoint. */
const OutboxWithFailpoint = Layer.effect(
  CallbackOutbox,
  Effect.gen(function*() {
    const switches = yield* TestSwitches
    const real = yield* Effect.provide(CallbackOutbox, CallbackOutbox.Default)
    const failIfAsked = (event: string) =>
      Effect.flatMap(Ref.get(switches.outboxDiesOn), (dieOn) =>
        dieOn === event ? Effect.dieMessage(`test: outbox failpoint on ${event}`) : Effect.void)
    return CallbackOutbox.make({
      enqueue: (input) => Effect.zipRight(failIfAsked(input.event), real.enqueue(input)),
      enqueueOrderEvent: (input) => Effect.zipRight(failIfAsked(input.event), real.enqueueOrderEvent(input))
    })
  })
)

export const testSettings: Partial<AppSettings> = {
  orderMaxRetries: 3,
  retryBaseDelay: Duration.seconds(2),
  retryMaxDelay: Duration.seconds(20),
  rateMaxAge: Duration.minutes(30)
}

/** The processor on a fresh scratch database, with the switches, ErrorReporter.Test and the real wake-up. */
export const ProcessorTestLive = (settings: Partial<AppSettings> = {}) => {
  const config = AppConfig.layerWith({ ...testSettings, ...settings })
  const database = Layer.merge(TestDatabaseLive({ maxConnections: 10 }), KeyValue.layerMemory).pipe(
    Layer.provideMerge(config)
  )
  const dependencies = Layer.mergeAll(
    RequisiteSelector.Default,
    BalanceManager.Default,
    ReferenceData.Default,
    AuditLogger.Default,
    OutboxWithFailpoint,
    FraudStub,
    ErrorReporter.Test,
    OrderWakeup.layer
  ).pipe(Layer.provideMerge(SwitchesLive))
  return OrderProcessor.DefaultWithoutDependencies.pipe(
    Layer.provideMerge(dependencies),
    Layer.provideMerge(database)
  )
}

const rateSetter: UserPrincipal = { userId: 1 as UserId, role: "admin", sessionId: 0, merchantId: null, traderId: null }

/** A fresh rate set the way an admin sets it, so the rate cache learns it at once. */
export const setRate = (rate: string, fiat = "RUB") =>
  Effect.flatMap(ReferenceData, (referenceData) =>
    Effect.orDie(referenceData.setRateByAdmin(rateSetter, fiat, "USDT", BigDecimal.unsafeFromString(rate))))

/** A rate row fetched `ageSeconds` ago, written directly (use a pair nothing has cached yet). */
export const insertOldRate = (rate: string, fiat: string, ageSeconds: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.orDie(sql`INSERT INTO exchange_rates (fiat_code, crypto_code, rate, source, fetched_at)
      VALUES (${fiat}, 'USDT', ${rate}, 'test', now() - make_interval(secs => ${ageSeconds}))`))

export const setSwitch = <K extends keyof Switches>(
  key: K,
  value: Switches[K] extends Ref.Ref<infer A> ? A : never
) => Effect.flatMap(TestSwitches, (switches) => Ref.set(switches[key] as Ref.Ref<unknown>, value))

export const resetSwitches = Effect.flatMap(TestSwitches, (switches) =>
  Effect.all([
    Ref.set(switches.fraudMode, "allow"),
    Ref.set(switches.fraudDelay, Duration.zero),
    Ref.set(switches.outboxDiesOn, null)
  ], { discard: true }))
