import { SqlClient } from "@effect/sql"
import { BigDecimal, Effect, Option, Redacted } from "effect"
import type { UserPrincipal } from "../domain/Principal.js"
import type { Role, UserId } from "../domain/Ids.js"
import { AppConfig } from "../layers/Config.js"
import { AdminService } from "./AdminService.js"
import { atomic } from "./Atomic.js"
import { BalanceManager } from "./BalanceManager.js"
import { randomToken } from "./Passwords.js"
import { ReferenceData } from "./ReferenceData.js"
import { RequisiteService } from "./RequisiteService.js"

const decimal = (value: string) => BigDecimal.unsafeFromString(value)

const DEMO_PASSWORD_BYTES = 12
const SEED_LOCK_KEY = 7_349_221_002

export interface SeedReport {
  readonly adminEmail: string
  /** Present only when the seed created the admin with a generated password: shown once. */
  readonly adminPassword: Option.Option<string>
  readonly demo: Option.Option<{
    readonly merchantEmail: string
    readonly traderEmails: ReadonlyArray<string>
    readonly password: string
    readonly storePublicId: string
    readonly apiKey: string
    readonly secretKey: string
  }>
}

/** First-run data: the admin always, the demo tenants only into an empty database and when SEED_DEMO is on. */
export class Seed extends Effect.Service<Seed>()("Seed", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AppConfig
    const admin = yield* AdminService
    const requisites = yield* RequisiteService
    const referenceData = yield* ReferenceData
    const balances = yield* BalanceManager

    const systemActor = (userId: number, role: Role): UserPrincipal => ({
      userId: userId as UserId,
      role,
      sessionId: 0,
      merchantId: null,
      traderId: null
    })

    const seedAdmin = Effect.gen(function*() {
      const generated = randomToken(DEMO_PASSWORD_BYTES)
      const password = Option.match(config.adminPassword, { onNone: () => generated, onSome: Redacted.value })
      const { created } = yield* admin.ensureAdmin(config.adminEmail, password)
      const [row] = yield* sql<{ id: number }>`SELECT id FROM users WHERE lower(email) = lower(${config.adminEmail})`
      return {
        adminId: row!.id,
        adminPassword: created && Option.isNone(config.adminPassword) ? Option.some(generated) : Option.none<string>()
      }
    })

    const seedDemo = (adminId: number) =>
      Effect.gen(function*() {
        const actor = systemActor(adminId, "admin")
        const password = randomToken(DEMO_PASSWORD_BYTES)
        const merchantEmail = "merchant@demo.jivapay.local"
        const merchant = yield* admin.createMerchant({ email: merchantEmail, password, name: "Demo Merchant" }, actor)
        const store = yield* admin.createStore({
          merchantId: merchant.id,
          name: "Demo Store",
          fiatCurrency: "RUB",
          payinCommissionPct: decimal("2.5"),
          payoutCommissionPct: decimal("3"),
          processingTtlSeconds: 1800
        }, actor)
        const banks = ["sber", "tinkoff", "alfa"] as const
        const traderEmails: Array<string> = []
        for (const [index, bankCode] of banks.entries()) {
          const email = `trader${index + 1}@demo.jivapay.local`
          traderEmails.push(email)
          const trader = yield* admin.createTrader({
            email,
            password,
            payinRewardPct: decimal("2"),
            payoutRewardPct: decimal("2.5"),
            priority: index
          }, actor)
          const traderActor = { ...systemActor(trader.userId, "trader"), traderId: trader.id }
          yield* requisites.create(traderActor, trader.id, {
            paymentMethod: index === 2 ? "sbp" : "card",
            bankCode,
            fiatCurrency: "RUB",
            details: `2200 0000 0000 00${String(index + 1).padStart(2, "0")}`,
            holderName: `Demo Trader ${index + 1}`,
            settings: {
              payinEnabled: true,
              payoutEnabled: true,
              minAmount: decimal("100"),
              maxAmount: decimal("100000"),
              dailyTurnoverLimit: decimal("1000000"),
              monthlyTurnoverLimit: decimal("10000000"),
              maxOrdersPerDay: 500,
              maxOpenOrders: 20
            }
          })
          yield* requisites.setWork(traderActor, trader.id, true)
          // A deposit to work against: PayIn holds come out of it.
          yield* balances.deposit({ kind: "trader", id: trader.id }, decimal("1000"), actor, "demo deposit")
        }
        // The store's float for PayOuts.
        yield* balances.deposit({ kind: "store", id: store.id }, decimal("500"), actor, "demo deposit")
        yield* referenceData.setRateByAdmin(actor, "RUB", "USDT", decimal("92.5"))
        return {
          merchantEmail,
          traderEmails,
          password,
          storePublicId: store.publicId,
          apiKey: store.apiKey,
          secretKey: store.secretKey
        }
      })

    /** Serialized by an advisory lock so that two processes starting on an empty database seed once. */
    const run = Effect.fn("Seed.run")(function*() {
      return yield* atomic("seed", seedOnce)
    }, Effect.orDie)

    const seedOnce = Effect.gen(function*() {
      yield* sql`SELECT pg_advisory_xact_lock(${SEED_LOCK_KEY})`
      const { adminId, adminPassword } = yield* seedAdmin
      const [{ merchants }] = (yield* sql<{ merchants: number }>`SELECT count(*)::int AS merchants FROM merchants`) as [
        { merchants: number }
      ]
      const demo = config.seedDemo && merchants === 0 ? Option.some(yield* seedDemo(adminId)) : Option.none()
      const report: SeedReport = { adminEmail: config.adminEmail, adminPassword, demo }
      return report
    })

    return { run } as const
  }),
  dependencies: [AdminService.Default, RequisiteService.Default, ReferenceData.Default, BalanceManager.Default]
}) {}
