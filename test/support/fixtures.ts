import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import type { Direction, OrderStatus, RequisiteStatus } from "../../src/domain/Status.js"

/**
 * Test data written straight into the tables with SQL, bypassing the services, so a suite can set up
 * any world (including ones the API would refuse) in a few lines. Money is given as decimal strings
 * ("1500.00"), exactly as NUMERIC stores it. Every helper returns the ids it created.
 */

const uniqueSuffix = () => randomBytes(6).toString("hex")

const insertReturningId = (statement: Effect.Effect<ReadonlyArray<{ readonly id: number }>, unknown>) =>
  Effect.map(Effect.orDie(statement), (rows) => rows[0]!.id)

export interface UserOptions {
  readonly email?: string | undefined
  readonly role?: "admin" | "support" | "merchant" | "trader" | undefined
  readonly isActive?: boolean | undefined
  /** Stored as is: fixtures do not hash. Tests that log in must pass a real hash. */
  readonly passwordHash?: string | undefined
}

export const createUser = (options: UserOptions = {}) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    insertReturningId(sql<{ id: number }>`INSERT INTO users ${
      sql.insert({
        email: options.email ?? `user-${uniqueSuffix()}@example.test`,
        passwordHash: options.passwordHash ?? "fixture-not-a-hash",
        role: options.role ?? "admin",
        isActive: options.isActive ?? true
      })
    } RETURNING id`))

export const createMerchant = (
  options: { readonly name?: string | undefined; readonly userId?: number | undefined } = {}
) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const userId = options.userId ?? (yield* createUser({ role: "merchant" }))
    const merchantId = yield* insertReturningId(sql<{ id: number }>`INSERT INTO merchants ${
      sql.insert({ userId, name: options.name ?? `merchant-${uniqueSuffix()}` })
    } RETURNING id`)
    return { merchantId, userId }
  })

export interface StoreOptions {
  readonly merchantId?: number | undefined
  readonly name?: string | undefined
  readonly fiatCurrency?: string | undefined
  readonly payinCommissionPct?: string | undefined
  readonly payoutCommissionPct?: string | undefined
  readonly processingTtlSeconds?: number | undefined
  readonly callbackUrl?: string | null | undefined
  readonly secretKey?: string | undefined
  readonly isActive?: boolean | undefined
  /** Creates the store's balance row with this balance (default "0"). */
  readonly balance?: string | undefined
  readonly frozen?: string | undefined
}

/** A store (and its merchant, unless given) with a balance row. The API key is not usable: tests of auth create their own. */
export const createStore = (options: StoreOptions = {}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const merchantId = options.merchantId ?? (yield* createMerchant()).merchantId
    const suffix = uniqueSuffix()
    const storeId = yield* insertReturningId(sql<{ id: number }>`INSERT INTO merchant_stores ${
      sql.insert({
        merchantId,
        name: options.name ?? `store-${suffix}`,
        publicId: `pub_${suffix}`,
        apiKeyPrefix: `key_${suffix}`,
        apiKeyHash: Buffer.alloc(32),
        secretKey: options.secretKey ?? `secret_${suffix}`,
        callbackUrl: options.callbackUrl ?? null,
        processingTtlSeconds: options.processingTtlSeconds ?? 900,
        fiatCurrency: options.fiatCurrency ?? "RUB",
        payinCommissionPct: options.payinCommissionPct ?? "3.0000",
        payoutCommissionPct: options.payoutCommissionPct ?? "2.0000",
        isActive: options.isActive ?? true
      })
    } RETURNING id`)
    yield* Effect.orDie(sql`INSERT INTO balance_stores ${
      sql.insert({ storeId, balance: options.balance ?? "0", frozen: options.frozen ?? "0" })
    }`)
    return { storeId, merchantId }
  })

export interface TraderOptions {
  readonly userId?: number | undefined
  readonly isActive?: boolean | undefined
  readonly inWork?: boolean | undefined
  readonly priority?: number | undefined
  readonly payinRewardPct?: string | undefined
  readonly payoutRewardPct?: string | undefined
  /** The trader's USDT deposit (default "10000.000000"); `null` creates no balance row. */
  readonly balance?: string | null | undefined
  readonly frozen?: string | undefined
}

/** A trader (with its user) that is active, in work and funded unless told otherwise. */
export const createTrader = (options: TraderOptions = {}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const userId = options.userId ?? (yield* createUser({ role: "trader" }))
    const traderId = yield* insertReturningId(sql<{ id: number }>`INSERT INTO traders ${
      sql.insert({
        userId,
        isActive: options.isActive ?? true,
        inWork: options.inWork ?? true,
        priority: options.priority ?? 0,
        payinRewardPct: options.payinRewardPct ?? "2.0000",
        payoutRewardPct: options.payoutRewardPct ?? "1.5000"
      })
    } RETURNING id`)
    if (options.balance !== null) {
      yield* setTraderBalance(traderId, options.balance ?? "10000.000000", options.frozen ?? "0")
    }
    return { traderId, userId }
  })

/** Creates or overwrites the trader's balance row. */
export const setTraderBalance = (traderId: number, balance: string, frozen: string = "0") =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.orDie(sql`INSERT INTO balance_traders ${sql.insert({ traderId, balance, frozen })}
      ON CONFLICT (trader_id) DO UPDATE SET balance = EXCLUDED.balance, frozen = EXCLUDED.frozen, updated_at = now()`))

// Callers name the columns in code (never user input); sql.update writes them as escaped identifiers.
const updateColumns = (table: "traders" | "requisites", id: number, columns: Record<string, unknown>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const given = Object.fromEntries(Object.entries(columns).filter(([, value]) => value !== undefined))
    return Object.keys(given).length === 0
      ? Effect.void
      : Effect.orDie(sql`UPDATE ${sql(table)} SET ${sql.update(given)} WHERE id = ${id}`)
  })

/** Changes only the given columns of a trader. */
export const setTraderState = (
  traderId: number,
  state: {
    readonly isActive?: boolean | undefined
    readonly inWork?: boolean | undefined
    readonly priority?: number | undefined
  }
) => updateColumns("traders", traderId, state)

export interface RequisiteSettings {
  readonly payinEnabled: boolean
  readonly payoutEnabled: boolean
  readonly minAmount: string
  readonly maxAmount: string
  readonly dailyTurnoverLimit: string
  readonly monthlyTurnoverLimit: string
  readonly maxOrdersPerDay: number
  readonly maxOpenOrders: number
}

export const defaultRequisiteSettings: RequisiteSettings = {
  payinEnabled: true,
  payoutEnabled: true,
  minAmount: "100.00",
  maxAmount: "100000.00",
  dailyTurnoverLimit: "1000000.00",
  monthlyTurnoverLimit: "10000000.00",
  maxOrdersPerDay: 1000,
  maxOpenOrders: 100
}

export interface RequisiteOptions {
  readonly paymentMethod?: string | undefined
  readonly bankCode?: string | undefined
  readonly fiatCurrency?: string | undefined
  readonly details?: string | undefined
  readonly holderName?: string | undefined
  readonly status?: RequisiteStatus | undefined
  readonly lastAssignedAt?: Date | null | undefined
  /** Merged over `defaultRequisiteSettings` (both directions enabled, generous limits). */
  readonly settings?: Partial<RequisiteSettings> | undefined
}

/** A requisite of `traderId` with its settings row: card / sber / RUB, active, never assigned, unless told otherwise. */
export const createRequisite = (traderId: number, options: RequisiteOptions = {}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const requisiteId = yield* insertReturningId(sql<{ id: number }>`INSERT INTO requisites ${
      sql.insert({
        traderId,
        paymentMethod: options.paymentMethod ?? "card",
        bankCode: options.bankCode ?? "sber",
        fiatCurrency: options.fiatCurrency ?? "RUB",
        details: options.details ?? `2202${String(Math.floor(Math.random() * 1e12)).padStart(12, "0")}`,
        holderName: options.holderName ?? "IVAN IVANOV",
        status: options.status ?? "active",
        lastAssignedAt: options.lastAssignedAt ?? null
      })
    } RETURNING id`)
    yield* setRequisiteSettings(requisiteId, { ...defaultRequisiteSettings, ...options.settings })
    return requisiteId
  })

/** Creates or overwrites the whole settings row of a requisite. */
export const setRequisiteSettings = (requisiteId: number, settings: RequisiteSettings) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.orDie(sql`INSERT INTO full_requisites_settings ${sql.insert({ requisiteId, ...settings })}
      ON CONFLICT (requisite_id) DO UPDATE SET
        payin_enabled = EXCLUDED.payin_enabled,
        payout_enabled = EXCLUDED.payout_enabled,
        min_amount = EXCLUDED.min_amount,
        max_amount = EXCLUDED.max_amount,
        daily_turnover_limit = EXCLUDED.daily_turnover_limit,
        monthly_turnover_limit = EXCLUDED.monthly_turnover_limit,
        max_orders_per_day = EXCLUDED.max_orders_per_day,
        max_open_orders = EXCLUDED.max_open_orders`))

/** Changes only the given columns of a requisite (`lastAssignedAt: null` clears it). */
export const setRequisiteState = (
  requisiteId: number,
  state: { readonly status?: RequisiteStatus | undefined; readonly lastAssignedAt?: Date | null | undefined }
) => updateColumns("requisites", requisiteId, state)

export interface IncomingOrderOptions {
  readonly storeId: number
  readonly merchantOrderId?: string | undefined
  readonly direction?: Direction | undefined
  readonly amount?: string | undefined
  readonly currency?: string | undefined
  readonly paymentMethod?: string | undefined
  readonly bankCode?: string | null | undefined
  readonly customerId?: string | null | undefined
  readonly clientIp?: string | null | undefined
  readonly status?: "new" | "retrying" | "assigned" | "failed" | "manual_review" | "cancelled" | undefined
  readonly payoutDestination?: unknown
}

/** An incoming order as the merchant API would store it (the request hash is a placeholder). */
export const createIncomingOrder = (options: IncomingOrderOptions) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const direction = options.direction ?? "payin"
    const payoutDestination = direction === "payout"
      ? options.payoutDestination ?? { details: "2202000000000000", holderName: "PETR PETROV", bankCode: "sber" }
      : null
    return insertReturningId(sql<{ id: number }>`INSERT INTO incoming_orders ${
      sql.insert({
        storeId: options.storeId,
        merchantOrderId: options.merchantOrderId ?? `mo-${uniqueSuffix()}`,
        requestHash: randomBytes(32),
        direction,
        amount: options.amount ?? "1500.00",
        currency: options.currency ?? "RUB",
        paymentMethod: options.paymentMethod ?? "card",
        bankCode: options.bankCode ?? null,
        customerId: options.customerId ?? null,
        clientIp: options.clientIp ?? null,
        status: options.status ?? "new",
        payoutDestination: payoutDestination === null ? null : JSON.stringify(payoutDestination)
      })
    } RETURNING id`)
  })

export interface OrderHistoryOptions {
  readonly storeId: number
  readonly traderId: number
  readonly requisiteId: number
  /** Created (status 'assigned') when not given. */
  readonly incomingOrderId?: number | undefined
  readonly direction?: Direction | undefined
  readonly amountFiat?: string | undefined
  readonly fiatCurrency?: string | undefined
  readonly exchangeRate?: string | undefined
  readonly amountCrypto?: string | undefined
  readonly storeCommissionPct?: string | undefined
  readonly storeCommissionCrypto?: string | undefined
  readonly traderRewardPct?: string | undefined
  readonly traderRewardCrypto?: string | undefined
  readonly status?: OrderStatus | undefined
  /** Default: now() of the inserting transaction. */
  readonly createdAt?: Date | undefined
  /** Default: 15 minutes after now(). */
  readonly expiresAt?: Date | undefined
}

/**
 * An order_history row (and its incoming order unless given), with plain placeholder amounts:
 * it does not touch balances, so it is for selector limits, listings and state-machine tests.
 */
export const insertOrderHistory = (options: OrderHistoryOptions) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const direction = options.direction ?? "payin"
    const amountFiat = options.amountFiat ?? "1500.00"
    const incomingOrderId = options.incomingOrderId ?? (yield* createIncomingOrder({
      storeId: options.storeId,
      direction,
      amount: amountFiat,
      currency: options.fiatCurrency ?? "RUB",
      status: "assigned"
    }))
    const orderId = yield* insertReturningId(sql<{ id: number }>`INSERT INTO order_history ${
      sql.insert({
        incomingOrderId,
        storeId: options.storeId,
        traderId: options.traderId,
        requisiteId: options.requisiteId,
        direction,
        amountFiat,
        fiatCurrency: options.fiatCurrency ?? "RUB",
        cryptoCurrency: "USDT",
        exchangeRate: options.exchangeRate ?? "92.50000000",
        amountCrypto: options.amountCrypto ?? "16.216216",
        storeCommissionPct: options.storeCommissionPct ?? "3.0000",
        storeCommissionCrypto: options.storeCommissionCrypto ?? "0.486486",
        traderRewardPct: options.traderRewardPct ?? "2.0000",
        traderRewardCrypto: options.traderRewardCrypto ?? "0.324324",
        status: options.status ?? "assigned",
        expiresAt: options.expiresAt ?? new Date(Date.now() + 15 * 60 * 1000),
        ...(options.createdAt === undefined ? {} : { createdAt: options.createdAt })
      })
    } RETURNING id`)
    return { orderId, incomingOrderId }
  })

/**
 * Empties every business table and restarts their ids, keeping the migrations' reference data and
 * seeded configuration (currencies, banks, payment methods, exchange rates, fraud rules). For suites
 * that share one database across tests or property-test runs.
 */
export const resetBusinessTables = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.orDie(Effect.zipRight(
    sql`TRUNCATE users, sessions, merchants, merchant_stores, traders, requisites, full_requisites_settings,
      incoming_orders, order_history, balance_stores, balance_traders, ledger_transfers, balance_store_history,
      balance_trader_crypto_history, balance_trader_fiat_history, balance_platform_history, balance_external_history,
      audit_logs, fraud_lists, fraud_checks, merchant_callbacks, idempotency_keys
      RESTART IDENTITY CASCADE`,
    sql`UPDATE balance_platform SET balance = 0, frozen = 0, updated_at = now()`
  )))

/** Adds a fiat currency to the reference data (idempotent), e.g. to test currency mismatches. */
export const ensureFiatCurrency = (code: string, name: string = code) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.orDie(sql`INSERT INTO fiat_currencies ${sql.insert({ code, name })} ON CONFLICT (code) DO NOTHING`))

/** The database's own day and month boundaries (`date_trunc` in the session's time zone). */
export const databaseClock = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.orDie(sql<{ now: Date; dayStart: Date; monthStart: Date }>`SELECT now() AS now,
    date_trunc('day', now()) AS day_start, date_trunc('month', now()) AS month_start`).pipe(
      Effect.map((rows) => rows[0]!)
    ))
