import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Logger, LogLevel, Ref, Schedule } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { OrderStatus } from "../../src/domain/Status.js"
import { AppConfig } from "../../src/layers/Config.js"
import { KeyValue } from "../../src/layers/KeyValue.js"
import { ObjectStore } from "../../src/layers/ObjectStore.js"
import { ErrorReporter } from "../../src/services/ErrorReporter.js"
import { OrderStatusManager } from "../../src/services/OrderStatusManager.js"
import { expireDueOrders } from "../../src/workers/TimeoutWorker.js"
import type { JivaPayProcess } from "../support/processes.js"
import {
  awaitHealthy,
  childEnv,
  CLUSTER_ADMIN_EMAIL,
  CLUSTER_ADMIN_PASSWORD,
  CLUSTER_PASSWORD,
  expectStatus,
  http,
  type HttpResult,
  login,
  mapBounded,
  receiptForm,
  sleep,
  spawnNode
} from "../support/invariants/cluster.js"
import { checkLedger, statusCounts, totalBalance } from "../support/invariants/ledgerChecks.js"
import { formatMicro, parseMicro } from "../support/invariants/ledgerModel.js"
import { eventually, ScratchDatabase, ScratchDatabaseLive, seededRandom } from "../support/workerProcess.js"

/**
 * Jepsen's "bank" test for JivaPay (SPEC §8, issue 4): two OS processes running the production entry
 * point (`src/main.ts start`: API + workers) on one database take 1,000 orders through the merchant
 * API, assign them, and then have them confirmed twice at once (one request to each process),
 * cancelled while being confirmed, confirmed by the customer twice, disputed, resolved twice, and
 * timed out while their trader confirms — with this process running the timeout worker's round as a
 * third contender. Money is only ever moved by the services; afterwards no order is posted twice,
 * completed ⇔ posted, no balance is below its holds, every race had exactly one winner whose result
 * is the order's final status, reconciliation is clean and the balances add up to what came in.
 */

const ORDER_COUNT = 1000
const TRADER_COUNT = 6
const STORE_COUNT = 2
const CREATE_CONCURRENCY = 16
const DRIVE_CONCURRENCY = 32
const TRADER_DEPOSIT = "8000"
const STORE_DEPOSIT = "20000"
const EXPECTED_EXTERNAL_NET = parseMicro("8000") * BigInt(TRADER_COUNT) + parseMicro("20000") * BigInt(STORE_COUNT)
/** Spread over more than one period of the nodes' timeout workers (5 s). */
const TIMEOUT_CONFIRM_DELAY_MS_MAX = 6_000
/** The most a cancel or dispute waits before racing a confirmation (see `after`). */
const HEAD_START_MS_MAX = 250

const objectDir = mkdtempSync(join(tmpdir(), "jivapay-jepsen-"))

/** This process: SQL for setup shortcuts and checks, and the timeout worker's round as a third contender. */
const TestLayer = Layer.mergeAll(OrderStatusManager.Default, ErrorReporter.Test).pipe(
  Layer.provideMerge(Layer.mergeAll(KeyValue.layerMemory, ObjectStore.layerLocal(objectDir), AppConfig.layerWith({}))),
  Layer.provideMerge(ScratchDatabaseLive({ maxConnections: 4 }))
)

// ---- scenarios ---------------------------------------------------------------------------------

type Scenario =
  | "confirm-confirm"
  | "cancel-confirm"
  | "cancel-cancel"
  | "client-twice-then-confirm-twice"
  | "dispute-confirm"
  | "timeout"
  | "timeout-after-client"
  | "untouched"

/** Cumulative shares of the orders, in percent. */
const scenarioShares: ReadonlyArray<readonly [Scenario, number]> = [
  ["confirm-confirm", 22],
  ["cancel-confirm", 15],
  ["cancel-cancel", 5],
  ["client-twice-then-confirm-twice", 13],
  ["dispute-confirm", 10],
  ["timeout", 10],
  ["timeout-after-client", 10],
  ["untouched", 15]
]

const scenarioFor = (roll: number): Scenario => {
  let cumulative = 0
  for (const [scenario, share] of scenarioShares) {
    cumulative += share
    if (roll * 100 < cumulative) return scenario
  }
  return "untouched"
}

interface AssignedOrder {
  readonly orderId: number
  readonly incomingOrderId: number
  readonly traderId: number
  readonly storeId: number
  readonly direction: "payin" | "payout"
}

/** One race: the requests sent at once, and what each got. Exactly one must win (200), the rest 409. */
interface RaceRecord {
  readonly orderId: number
  readonly what: string
  readonly labels: ReadonlyArray<string>
  readonly statuses: ReadonlyArray<number>
}

interface Cluster {
  readonly nodes: ReadonlyArray<JivaPayProcess>
  readonly adminToken: string
  readonly traderTokens: ReadonlyMap<number, string>
  readonly storeKeys: ReadonlyMap<number, string>
}

// ---------------------------------------------------------------------------------------------------

layer(TestLayer, { excludeTestServices: true })("Jepsen bank", (it) => {
  it.effect(`${ORDER_COUNT} orders, 2 processes, racing confirmations, cancellations, disputes and timeouts`, () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { url } = yield* ScratchDatabase
      const startedAtMs = Date.now()

      // Two full nodes (API + workers) on one database; they start together (migrations and the
      // admin seed are serialized by advisory locks).
      const nodes = yield* Effect.all([spawnNode("start", childEnv(url)), spawnNode("start", childEnv(url))], {
        concurrency: "unbounded"
      })
      yield* Effect.all(nodes.map((node) => awaitHealthy(node)), { concurrency: "unbounded", discard: true })
      const startupMs = Date.now() - startedAtMs
      const [nodeA, nodeB] = nodes as [JivaPayProcess, JivaPayProcess]
      const nodeOf = (index: number) => nodes[index % nodes.length]!

      // ---- the world, through the admin API (half the calls to each node) -------------------------
      const cluster: Cluster = yield* Effect.promise(async () => {
        const adminToken = await login(nodeA.baseUrl, CLUSTER_ADMIN_EMAIL, CLUSTER_ADMIN_PASSWORD)
        expectStatus(await http(nodeB.baseUrl, "PUT", "/api/admin/exchange-rates", {
          token: adminToken,
          json: { fiat: "RUB", crypto: "USDT", rate: "92.5" }
        }), 200, "exchange rate")
        const merchant = expectStatus(await http(nodeA.baseUrl, "POST", "/api/admin/merchants", {
          token: adminToken,
          json: { email: "merchant@jepsen.test", password: CLUSTER_PASSWORD, name: "Jepsen Merchant" }
        }), 201, "merchant")
        const storeKeys = new Map<number, string>()
        for (let index = 0; index < STORE_COUNT; index++) {
          const node = nodeOf(index).baseUrl
          const store = expectStatus(await http(node, "POST", "/api/admin/stores", {
            token: adminToken,
            json: {
              merchantId: merchant.body.id,
              name: `Jepsen Store ${index}`,
              fiatCurrency: "RUB",
              payinCommissionPct: "3",
              payoutCommissionPct: "2.5",
              processingTtlSeconds: 900
            }
          }), 201, "store")
          expectStatus(await http(node, "POST", `/api/admin/stores/${store.body.id}/deposit`, {
            token: adminToken,
            json: { amount: STORE_DEPOSIT }
          }), 200, "store deposit")
          storeKeys.set(store.body.id, store.body.apiKey)
        }
        const traderTokens = new Map<number, string>()
        for (let index = 0; index < TRADER_COUNT; index++) {
          const node = nodeOf(index).baseUrl
          const email = `trader-${index}@jepsen.test`
          // Trader 0's PayIn reward exceeds the store's commission: the platform loses on its orders.
          const trader = expectStatus(await http(node, "POST", "/api/admin/traders", {
            token: adminToken,
            json: { email, password: CLUSTER_PASSWORD, payinRewardPct: index === 0 ? "3.5" : "2", payoutRewardPct: "1.5" }
          }), 201, "trader")
          expectStatus(await http(node, "POST", `/api/admin/traders/${trader.body.id}/deposit`, {
            token: adminToken,
            json: { amount: TRADER_DEPOSIT }
          }), 200, "trader deposit")
          const token = await login(nodeOf(index + 1).baseUrl, email, CLUSTER_PASSWORD)
          expectStatus(await http(node, "POST", "/api/trader/requisites", {
            token,
            json: {
              paymentMethod: "card",
              bankCode: "sber",
              fiatCurrency: "RUB",
              details: `2202 2000 0000 ${String(1000 + index)}`,
              holderName: `Trader ${index}`,
              settings: {
                payinEnabled: true,
                payoutEnabled: true,
                minAmount: "100",
                maxAmount: "100000",
                dailyTurnoverLimit: "100000000",
                monthlyTurnoverLimit: "1000000000",
                maxOrdersPerDay: 10000,
                maxOpenOrders: 10000
              }
            }
          }), 201, "requisite")
          expectStatus(await http(node, "POST", "/api/trader/work", { token, json: { inWork: true } }), 200, "work")
          traderTokens.set(trader.body.id, token)
        }
        return { nodes, adminToken, traderTokens, storeKeys }
      })

      // ---- 1,000 orders through the merchant API, alternating between the nodes ------------------
      const random = seededRandom(20261127)
      const storeIds = [...cluster.storeKeys.keys()]
      const creationStartedAtMs = Date.now()
      const created = yield* Effect.promise(() =>
        mapBounded(Array.from({ length: ORDER_COUNT }, (_, index) => index), CREATE_CONCURRENCY, async (index) => {
          const direction = random() < 0.6 ? "payin" : "payout"
          const storeId = storeIds[index % storeIds.length]!
          const amount = (500 + Math.floor(random() * 450_000) / 100).toFixed(2)
          const result = await http(nodeOf(index).baseUrl, "POST", "/api/merchant/orders", {
            apiKey: cluster.storeKeys.get(storeId)!,
            json: {
              merchantOrderId: `jepsen-${index}`,
              direction,
              amount,
              currency: "RUB",
              paymentMethod: "card",
              ...(direction === "payout"
                ? { payoutDestination: { details: "2202000000000000", holderName: "PETR PETROV", bankCode: "sber" } }
                : {})
            }
          })
          return expectStatus(result, 201, `order ${index}`).body.id as number
        })
      )
      const creationMs = Date.now() - creationStartedAtMs
      expect(new Set(created).size).toBe(ORDER_COUNT)

      const assignmentStartedAtMs = Date.now()
      const assignedCount = sql<{ count: number }>`SELECT count(*)::int AS count FROM incoming_orders WHERE status = 'assigned'`
        .pipe(Effect.map((rows) => rows[0]!.count))
      yield* eventually("every order assigned", Effect.map(assignedCount, (count) => count === ORDER_COUNT), Duration.seconds(60))
      const assignmentMs = Date.now() - assignmentStartedAtMs
      const orders = yield* sql<AssignedOrder>`SELECT id AS order_id, incoming_order_id, trader_id, store_id, direction
        FROM order_history ORDER BY id`
      expect(orders).toHaveLength(ORDER_COUNT)

      // ---- the drive: every order gets a scenario ------------------------------------------------
      const races: Array<RaceRecord> = []
      const unexpected: Array<string> = []
      const expected = new Map<number, OrderStatus>()
      const phaseTwo: Array<AssignedOrder> = []
      let requests = 0

      const traderToken = (order: AssignedOrder) => cluster.traderTokens.get(order.traderId)!
      const storeKey = (order: AssignedOrder) => cluster.storeKeys.get(order.storeId)!
      const confirm = (order: AssignedOrder, node: JivaPayProcess) => () =>
        http(node.baseUrl, "POST", `/api/trader/orders/${order.orderId}/confirm`, { token: traderToken(order), form: receiptForm })
      const clientConfirm = (order: AssignedOrder, node: JivaPayProcess) => () =>
        http(node.baseUrl, "POST", `/api/merchant/orders/${order.incomingOrderId}/client-confirmation`, {
          apiKey: storeKey(order),
          form: receiptForm
        })
      const withReason = (order: AssignedOrder, node: JivaPayProcess, action: "cancel" | "dispute") => () =>
        http(node.baseUrl, "POST", `/api/trader/orders/${order.orderId}/${action}`, {
          token: traderToken(order),
          json: { reason: `jepsen ${action}` }
        })
      const resolve = (order: AssignedOrder, node: JivaPayProcess, status: "completed" | "cancelled") => () =>
        http(node.baseUrl, "POST", `/api/admin/orders/${order.orderId}/status`, {
          token: cluster.adminToken,
          json: { status, reason: "jepsen resolution" }
        })

      /** Sends every request at once; returns the label of the winner (the one 200), recording the race. */
      const race = async (order: AssignedOrder, what: string, contenders: ReadonlyArray<readonly [string, () => Promise<HttpResult>]>) => {
        requests += contenders.length
        const results = await Promise.all(contenders.map(([, send]) => send()))
        const statuses = results.map((result) => result.status)
        races.push({ orderId: order.orderId, what, labels: contenders.map(([label]) => label), statuses })
        results.forEach((result, index) => {
          if (result.status !== 200 && result.status !== 409) {
            unexpected.push(`order ${order.orderId} ${what} ${contenders[index]![0]}: ${result.status} ${result.text.slice(0, 300)}`)
          }
        })
        const winner = statuses.indexOf(200)
        return winner === -1 ? "none" : contenders[winner]![0]
      }
      const single = async (order: AssignedOrder, what: string, send: () => Promise<HttpResult>) => {
        requests++
        const result = await send()
        if (result.status !== 200 && result.status !== 409) {
          unexpected.push(`order ${order.orderId} ${what}: ${result.status} ${result.text.slice(0, 300)}`)
        }
        return result.status
      }
      /**
       * A confirmation uploads its receipt before its transaction, so a JSON cancel sent at the same
       * instant nearly always wins; a random head start for the confirmation lets both sides win.
       */
      const after = (ms: number, send: () => Promise<HttpResult>) => async () => {
        await sleep(ms)
        return send()
      }
      const headStartMs = () => Math.floor(random() * HEAD_START_MS_MAX)
      const timeoutConfirms = { won: 0, lost: 0 }
      /** Which node gets which contender: shuffled per order, so every pairing happens. */
      const pair = (): readonly [JivaPayProcess, JivaPayProcess] => random() < 0.5 ? [nodeA, nodeB] : [nodeB, nodeA]

      const scenarios = orders.map((order) => ({ order, scenario: scenarioFor(random()), delayMs: random() }))

      // Timeouts: some customers confirm first (so the order expires into requires_attention), then
      // every timeout order's expires_at moves into the past at once.
      const timeoutOrders = scenarios.filter(({ scenario }) => scenario === "timeout" || scenario === "timeout-after-client")
      const afterClient = new Set<number>()
      yield* Effect.promise(() =>
        mapBounded(timeoutOrders, CREATE_CONCURRENCY, async ({ order, scenario }) => {
          if (scenario !== "timeout-after-client" || order.direction !== "payin") return
          expectStatus(await clientConfirm(order, nodeOf(order.orderId))(), 200, `client confirmation of ${order.orderId}`)
          requests++
          afterClient.add(order.orderId)
        })
      )
      const driveStartedAtMs = Date.now()
      yield* sql`UPDATE order_history SET expires_at = now() - interval '1 second'
        WHERE id IN ${sql.in(timeoutOrders.map(({ order }) => order.orderId))}`
      // This process's timeout round races the nodes' timeout workers and the traders' confirmations.
      // Every 2 s after a first wait of 3 s: the nodes' own timeout workers (every 5 s each, at phases
      // of their own) usually get the first round; this process joins the later ones.
      const movedHere = yield* Ref.make(0)
      const expirer = yield* Effect.fork(
        expireDueOrders.pipe(
          Effect.tap((moved) => Ref.update(movedHere, (total) => total + moved)),
          Effect.repeat(Schedule.spaced(Duration.seconds(2))),
          Effect.delay(Duration.seconds(3)),
          Logger.withMinimumLogLevel(LogLevel.None)
        )
      )

      const drive = async ({ delayMs, order, scenario }: typeof scenarios[number]) => {
        const [first, second] = pair()
        switch (scenario) {
          case "confirm-confirm": {
            await race(order, scenario, [["confirm@1", confirm(order, first)], ["confirm@2", confirm(order, second)]])
            expected.set(order.orderId, "completed")
            return
          }
          case "cancel-confirm": {
            const winner = await race(order, scenario, [
              ["cancel", after(headStartMs(), withReason(order, first, "cancel"))],
              ["confirm", confirm(order, second)]
            ])
            expected.set(order.orderId, winner === "cancel" ? "cancelled" : "completed")
            return
          }
          case "cancel-cancel": {
            await race(order, scenario, [["cancel@1", withReason(order, first, "cancel")], ["cancel@2", withReason(order, second, "cancel")]])
            expected.set(order.orderId, "cancelled")
            return
          }
          case "client-twice-then-confirm-twice": {
            if (order.direction === "payin") {
              await race(order, "client-client", [
                ["client@1", clientConfirm(order, first)],
                ["client@2", clientConfirm(order, second)]
              ])
            } else {
              // A PayOut has no customer payment: both are refused, nothing changes.
              const statuses = await Promise.all([
                single(order, "payout client@1", clientConfirm(order, first)),
                single(order, "payout client@2", clientConfirm(order, second))
              ])
              if (statuses.some((status) => status !== 409)) {
                unexpected.push(`payout ${order.orderId} client confirmation: ${statuses}`)
              }
            }
            await race(order, "confirm-confirm after client", [
              ["confirm@1", confirm(order, second)],
              ["confirm@2", confirm(order, first)]
            ])
            expected.set(order.orderId, "completed")
            return
          }
          case "dispute-confirm": {
            const winner = await race(order, scenario, [
              ["dispute", after(headStartMs(), withReason(order, first, "dispute"))],
              ["confirm", confirm(order, second)]
            ])
            if (winner === "confirm") expected.set(order.orderId, "completed")
            else phaseTwo.push(order)
            return
          }
          case "timeout":
          case "timeout-after-client": {
            // Half the traders confirm, at a random moment while the timeout rounds work through the backlog.
            if (delayMs >= 0.5) {
              await sleep(Math.floor((delayMs - 0.5) * 2 * TIMEOUT_CONFIRM_DELAY_MS_MAX))
              const status = await single(order, "confirm vs timeout", confirm(order, first))
              timeoutConfirms[status === 200 ? "won" : "lost"]++
              if (status === 200) {
                expected.set(order.orderId, "completed")
                return
              }
            }
            if (afterClient.has(order.orderId)) phaseTwo.push(order)
            else expected.set(order.orderId, "failed")
            return
          }
          case "untouched": {
            expected.set(order.orderId, "assigned")
            return
          }
        }
      }
      // The timeout orders are driven in their own lane, so their confirmations meet the timeout rounds.
      const isTimeout = (scenario: Scenario) => scenario === "timeout" || scenario === "timeout-after-client"
      yield* Effect.promise(() =>
        Promise.all([
          mapBounded(scenarios.filter(({ scenario }) => isTimeout(scenario)), DRIVE_CONCURRENCY, drive),
          mapBounded(scenarios.filter(({ scenario }) => !isTimeout(scenario)), DRIVE_CONCURRENCY, drive)
        ])
      )

      // Every expired order is moved by somebody within a few rounds.
      const overdue = sql<{ count: number }>`SELECT count(*)::int AS count FROM order_history
        WHERE status IN ('assigned', 'pending_trader_confirmation') AND expires_at <= now()`.pipe(Effect.map((rows) => rows[0]!.count))
      yield* eventually("every expired order moved", Effect.map(overdue, (count) => count === 0), Duration.seconds(30))
      yield* Fiber.interrupt(expirer)

      // Phase two: disputes and orders waiting for a person are resolved twice at once, once each way.
      yield* Effect.promise(() =>
        mapBounded(phaseTwo, DRIVE_CONCURRENCY, async (order) => {
          const [first, second] = pair()
          const winner = await race(order, "resolve-resolve", [
            ["completed", resolve(order, first, "completed")],
            ["cancelled", resolve(order, second, "cancelled")]
          ])
          if (winner !== "none") expected.set(order.orderId, winner as OrderStatus)
        })
      )
      const driveMs = Date.now() - driveStartedAtMs

      // ---- the verdict ------------------------------------------------------------------------------
      expect(unexpected, "responses other than 200/409").toEqual([])
      const lostRaces = races.filter((record) =>
        record.statuses.filter((status) => status === 200).length !== 1 ||
        record.statuses.some((status) => status !== 200 && status !== 409)
      )
      expect(lostRaces, "races without exactly one winner").toEqual([])

      const { snapshot, violations } = yield* checkLedger
      expect(violations, "ledger invariants").toEqual([])
      const mismatched = orders
        .map((order) => ({ orderId: order.orderId, expected: expected.get(order.orderId), actual: snapshot.orders.get(order.orderId)?.status }))
        .filter((row) => row.expected !== row.actual)
      expect(mismatched, "final status ≠ the acknowledged winner's").toEqual([])

      const doublePostings = yield* sql`SELECT order_id, count(*)::int AS postings FROM ledger_transfers
        WHERE kind = 'post' GROUP BY order_id HAVING count(*) > 1`
      expect(doublePostings, "orders posted more than once").toEqual([])
      const completedWithoutPosting = yield* sql`SELECT o.id, o.status FROM order_history o
        WHERE (o.status = 'completed') <> EXISTS (SELECT 1 FROM ledger_transfers l WHERE l.order_id = o.id AND l.kind = 'post')`
      expect(completedWithoutPosting, "completed ⇔ posted").toEqual([])
      const belowHolds = yield* sql`SELECT 'store' AS kind, store_id AS id FROM balance_stores WHERE frozen < 0 OR balance < frozen
        UNION ALL SELECT 'trader', trader_id FROM balance_traders WHERE frozen < 0 OR balance < frozen`
      expect(belowHolds, "balances below their holds").toEqual([])

      for (const node of nodes) {
        const report = expectStatus(
          yield* Effect.promise(() => http(node.baseUrl, "GET", "/api/admin/reconciliation", { token: cluster.adminToken })),
          200,
          "reconciliation"
        ).body
        expect(report.differences).toEqual([])
        expect(report.ok).toBe(true)
        const sum = parseMicro(report.totals.stores) + parseMicro(report.totals.traders) + parseMicro(report.totals.platform)
        expect(formatMicro(sum)).toBe(report.totals.externalNet)
        expect(report.totals.externalNet).toBe(formatMicro(EXPECTED_EXTERNAL_NET))
      }
      expect(formatMicro(totalBalance(snapshot))).toBe(formatMicro(EXPECTED_EXTERNAL_NET))
      expect(snapshot.externalNet).toBe(EXPECTED_EXTERNAL_NET)

      const [expiries] = yield* sql<{ count: number }>`SELECT count(*)::int AS count FROM audit_logs
        WHERE action IN ('order.failed', 'order.requires_attention')`
      const timeouts = { moved: expiries!.count, byThisProcess: yield* Ref.get(movedHere) }
      const winners: Record<string, number> = {}
      for (const record of races) {
        const key = `${record.what}:${record.labels[record.statuses.indexOf(200)] ?? "none"}`
        winners[key] = (winners[key] ?? 0) + 1
      }
      const seconds = (ms: number) => ms / 1000
      // Straight to stdout: the config's `silent: "passed-only"` hides console output of passing
      // tests, and these numbers are wanted from every run.
      process.stdout.write(`${JSON.stringify({
        jepsenBank: {
          orders: ORDER_COUNT,
          processes: nodes.length,
          startupMs,
          createOrdersPerSecond: Math.round(ORDER_COUNT / seconds(creationMs)),
          assignmentMs,
          assignedPerSecond: Math.round(ORDER_COUNT / seconds(creationMs + assignmentMs)),
          driveMs,
          driveRequests: requests,
          driveRequestsPerSecond: Math.round(requests / seconds(driveMs)),
          races: races.length,
          winners,
          timeoutConfirms,
          timeouts,
          finalStatuses: statusCounts(snapshot),
          platformBalance: formatMicro(snapshot.platform),
          totalMs: Date.now() - startedAtMs
        }
      })}\n`)
    }).pipe(Effect.scoped), 180_000)
})
