import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect, Layer, Logger, LogLevel } from "effect"
import { randomBytes } from "node:crypto"
import type { Direction } from "../../src/domain/Status.js"
import { atomic } from "../../src/services/Atomic.js"
import { BalanceManager } from "../../src/services/BalanceManager.js"
import { ErrorReporter } from "../../src/services/ErrorReporter.js"
import { FraudDetector } from "../../src/services/FraudDetector.js"
import { OrderProcessor } from "../../src/services/OrderProcessor.js"
import { hashPassword } from "../../src/services/Passwords.js"
import { createIncomingOrder, createRequisite, createUser, insertOrderHistory } from "../support/fixtures.js"
import { adminToken, loginAs, request, TestAppLive, TestServer } from "../support/TestApp.js"

const maxReceiptBytes = 8192
const PASSWORD = "lifecycle-password-1"
const unique = () => randomBytes(5).toString("hex")
const quiet = Logger.withMinimumLogLevel(LogLevel.Error)

// ---- receipts as a browser would send them -------------------------------------------------

const pngBytes = (size = 256) => {
  const bytes = new Uint8Array(size)
  bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
  return bytes
}
const pdfBytes = () => new TextEncoder().encode("%PDF-1.4\n%%EOF\n")

const form = (files: ReadonlyArray<{ field?: string; bytes: Uint8Array; type: string; name: string }>, fields: Record<string, string> = {}) => {
  const data = new FormData()
  for (const file of files) data.append(file.field ?? "receipt", new Blob([file.bytes], { type: file.type }), file.name)
  for (const [key, value] of Object.entries(fields)) data.append(key, value)
  return data
}
const pngForm = (size?: number) => form([{ bytes: pngBytes(size), type: "image/png", name: "receipt.png" }])
const pdfForm = () => form([{ bytes: pdfBytes(), type: "application/pdf", name: "receipt.pdf" }])

// ---- actors through the admin API ------------------------------------------------------------

const newTrader = Effect.gen(function*() {
  const token = yield* adminToken
  const email = `trader-${unique()}@lifecycle.test`
  const created = yield* request("POST", "/api/admin/traders", {
    token,
    body: { email, password: PASSWORD, payinRewardPct: "2", payoutRewardPct: "2" }
  })
  expect(created.status, created.text).toBe(201)
  const deposit = yield* request("POST", `/api/admin/traders/${created.body.id}/deposit`, { token, body: { amount: "100" } })
  expect(deposit.status, deposit.text).toBe(200)
  return { traderId: created.body.id as number, token: yield* loginAs(email, PASSWORD) }
})

const newStore = Effect.gen(function*() {
  const token = yield* adminToken
  const merchant = yield* request("POST", "/api/admin/merchants", {
    token,
    body: { email: `m-${unique()}@lifecycle.test`, password: PASSWORD, name: "Merchant" }
  })
  expect(merchant.status, merchant.text).toBe(201)
  const store = yield* request("POST", "/api/admin/stores", {
    token,
    body: {
      merchantId: merchant.body.id,
      name: `Store ${unique()}`,
      fiatCurrency: "RUB",
      payinCommissionPct: "3",
      payoutCommissionPct: "3",
      processingTtlSeconds: 900
    }
  })
  expect(store.status, store.text).toBe(201)
  const deposit = yield* request("POST", `/api/admin/stores/${store.body.id}/deposit`, { token, body: { amount: "100" } })
  expect(deposit.status, deposit.text).toBe(200)
  return { storeId: store.body.id as number, apiKey: store.body.apiKey as string }
})

const newStaff = (role: "support" | "admin") =>
  Effect.gen(function*() {
    const email = `${role}-${unique()}@lifecycle.test`
    yield* createUser({ role, email, passwordHash: yield* hashPassword(PASSWORD) })
    return yield* loginAs(email, PASSWORD)
  })

/**
 * An assigned order with its hold, as the OrderProcessor leaves it (fixtures + BalanceManager.hold).
 * 1500 RUB at 92.5: A = 16.216216, s (3%) = 0.486486, t (2%) = 0.324324.
 */
const assignedOrder = (
  trader: { readonly traderId: number },
  store: { readonly storeId: number },
  direction: Direction
) =>
  Effect.gen(function*() {
    const requisiteId = yield* createRequisite(trader.traderId)
    const incomingOrderId = yield* createIncomingOrder({ storeId: store.storeId, direction, status: "assigned" })
    const { orderId } = yield* insertOrderHistory({
      storeId: store.storeId,
      traderId: trader.traderId,
      requisiteId,
      direction,
      incomingOrderId
    })
    yield* Effect.flatMap(BalanceManager, (balances) => atomic("test.hold", balances.hold(orderId))).pipe(
      Effect.provide(BalanceManager.Default)
    )
    return { orderId, incomingOrderId, requisiteId }
  })

const world = (direction: Direction) =>
  Effect.gen(function*() {
    const trader = yield* newTrader
    const store = yield* newStore
    const order = yield* assignedOrder(trader, store, direction)
    return { trader, store, ...order }
  })

/** Everything a move writes about one order. */
const footprint = (orderId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ status: string; incomingStatus: string; proofs: number; transfers: string; audits: string; callbacks: string }>`
      SELECT o.status, i.status AS incoming_status,
        (CASE WHEN o.client_proof_key IS NULL THEN 0 ELSE 1 END + CASE WHEN o.trader_proof_key IS NULL THEN 0 ELSE 1 END) AS proofs,
        (SELECT coalesce(string_agg(kind, ',' ORDER BY id), '') FROM ledger_transfers WHERE order_id = o.id) AS transfers,
        (SELECT coalesce(string_agg(action, ',' ORDER BY id), '') FROM audit_logs
          WHERE target_entity = 'order' AND target_id = o.id::text) AS audits,
        (SELECT coalesce(string_agg(event, ',' ORDER BY id), '') FROM merchant_callbacks WHERE incoming_order_id = i.id) AS callbacks
      FROM order_history o JOIN incoming_orders i ON i.id = o.incoming_order_id WHERE o.id = ${orderId}`.pipe(
      Effect.orDie,
      Effect.map((rows) => rows[0]!)
    ))

const postings = (orderId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ count: number }>`SELECT count(*)::int AS count FROM ledger_transfers WHERE order_id = ${orderId} AND kind = 'post'`.pipe(
      Effect.orDie,
      Effect.map((rows) => rows[0]!.count)
    ))

const balances = (w: { trader: { token: string }; store: { apiKey: string } }) =>
  Effect.all({
    trader: Effect.map(request("GET", "/api/trader/balance", { token: w.trader.token }), (response) => response.body),
    store: Effect.map(request("GET", "/api/merchant/balance", { apiKey: w.store.apiKey }), (response) => response.body)
  })

const confirm = (token: string, orderId: number, body?: FormData) =>
  request("POST", `/api/trader/orders/${orderId}/confirm`, body === undefined ? { token } : { token, rawBody: body })
const clientConfirm = (apiKey: string, incomingOrderId: number, body?: FormData) =>
  request("POST", `/api/merchant/orders/${incomingOrderId}/client-confirmation`, body === undefined ? { apiKey } : { apiKey, rawBody: body })

/** A multipart upload sent as a stream (chunked transfer encoding, no Content-Length). */
const chunkedUpload = (path: string, headers: Record<string, string>, file: Uint8Array) =>
  Effect.flatMap(TestServer, ({ baseUrl }) =>
    Effect.promise(async () => {
      const boundary = `----jivapay${unique()}`
      const encoder = new TextEncoder()
      const parts = [
        encoder.encode(`--${boundary}\r\nContent-Disposition: form-data; name="receipt"; filename="r.png"\r\nContent-Type: image/png\r\n\r\n`),
        file,
        encoder.encode(`\r\n--${boundary}--\r\n`)
      ]
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          for (const part of parts) controller.enqueue(part)
          controller.close()
        }
      })
      const response = await fetch(`${baseUrl}${path}`, {
        method: "POST",
        headers: { ...headers, "content-type": `multipart/form-data; boundary=${boundary}` },
        body,
        duplex: "half"
      } as RequestInit)
      return { status: response.status, text: await response.text() }
    }))

const ProcessorLive = OrderProcessor.Default.pipe(Layer.provide([FraudDetector.Default, ErrorReporter.Default]))
const processIncoming = (incomingOrderId: number) =>
  Effect.flatMap(OrderProcessor, (processor) => processor.processIncomingOrder(incomingOrderId)).pipe(
    Effect.provide(ProcessorLive)
  )

layer(TestAppLive({ settings: { maxReceiptBytes } }), { excludeTestServices: true })("order lifecycle over HTTP", (it) => {
  it.effect("PayIn end to end: merchant API → assignment → client receipt → trader confirm → completed and posted", () =>
    Effect.gen(function*() {
      const token = yield* adminToken
      expect((yield* request("PUT", "/api/admin/exchange-rates", { token, body: { fiat: "RUB", crypto: "USDT", rate: "92.5" } })).status).toBe(200)
      const trader = yield* newTrader
      const store = yield* newStore
      const requisite = yield* request("POST", "/api/trader/requisites", {
        token: trader.token,
        body: {
          paymentMethod: "card",
          bankCode: "tinkoff",
          fiatCurrency: "RUB",
          details: "2200 7000 0000 0001",
          holderName: "Anna Smirnova",
          settings: {
            payinEnabled: true,
            payoutEnabled: true,
            minAmount: "100",
            maxAmount: "100000",
            dailyTurnoverLimit: "1000000",
            monthlyTurnoverLimit: "10000000",
            maxOrdersPerDay: 100,
            maxOpenOrders: 10
          }
        }
      })
      expect(requisite.status, requisite.text).toBe(201)
      expect((yield* request("POST", "/api/trader/work", { token: trader.token, body: { inWork: true } })).status).toBe(200)
      const created = yield* request("POST", "/api/merchant/orders", {
        apiKey: store.apiKey,
        body: { merchantOrderId: `e2e-${unique()}`, direction: "payin", amount: "1500.00", currency: "RUB", paymentMethod: "card", bankCode: "tinkoff" }
      })
      expect(created.status, created.text).toBe(201)
      const outcome = yield* processIncoming(created.body.id).pipe(quiet)
      expect(outcome._tag, JSON.stringify(outcome)).toBe("Assigned")

      const listed = yield* request("GET", "/api/trader/orders?status=assigned", { token: trader.token })
      expect(listed.status, listed.text).toBe(200)
      expect(listed.body.total).toBe(1)
      const item = listed.body.items[0]
      expect(item).toEqual({
        id: expect.any(Number),
        incomingOrderId: created.body.id,
        status: "assigned",
        direction: "payin",
        amountFiat: "1500.00",
        amountCrypto: "16.216216",
        exchangeRate: "92.50000000",
        requisiteId: requisite.body.id,
        payoutDestination: null,
        expiresAt: expect.any(String)
      })
      // Held: the trader's A − t = 16.216216 − 0.324324.
      expect((yield* balances({ trader, store })).trader).toEqual({ balance: "100.000000", frozen: "15.891892", available: "84.108108" })

      const confirmed = yield* clientConfirm(store.apiKey, created.body.id, pngForm())
      expect(confirmed.status, confirmed.text).toBe(200)
      expect(confirmed.body).toMatchObject({ id: created.body.id, status: "assigned", order: { id: item.id, status: "pending_trader_confirmation" } })
      expect((yield* clientConfirm(store.apiKey, created.body.id, pngForm())).status).toBe(409)

      const completed = yield* confirm(trader.token, item.id)
      expect(completed.status, completed.text).toBe(200)
      expect(completed.body).toEqual({ ...item, status: "completed" })
      const again = yield* confirm(trader.token, item.id)
      expect(again.status).toBe(409)
      expect(again.body._tag).toBe("InvalidTransition")

      // PayIn posted: store += A − s (s = 3% = 0.486486), trader −= A − t (t = 2% = 0.324324).
      expect(yield* balances({ trader, store })).toEqual({
        trader: { balance: "84.108108", frozen: "0.000000", available: "84.108108" },
        store: { balance: "115.729730", frozen: "0.000000", available: "115.729730" }
      })
      expect(yield* footprint(item.id)).toMatchObject({
        status: "completed",
        proofs: 1,
        transfers: "hold,post",
        audits: "order.assigned,order.pending_trader_confirmation,order.completed"
      })
      const merchantView = yield* request("GET", `/api/merchant/orders/${created.body.id}`, { apiKey: store.apiKey })
      expect(merchantView.body.order.status).toBe("completed")
    }).pipe(quiet))

  it.effect("PayOut: confirm without a receipt is 400 naming receipt; with a PDF it completes and posts", () =>
    Effect.gen(function*() {
      const w = yield* world("payout")
      expect((yield* balances(w)).store).toEqual({ balance: "100.000000", frozen: "16.702702", available: "83.297298" })
      const before = yield* footprint(w.orderId)
      const missing = yield* confirm(w.trader.token, w.orderId)
      expect(missing.status, missing.text).toBe(400)
      expect(missing.body).toMatchObject({ _tag: "ValidationError", field: "receipt" })
      const emptyForm = yield* confirm(w.trader.token, w.orderId, form([], { note: "no file" }))
      expect(emptyForm.status).toBe(400)
      expect(emptyForm.body.field).toBe("receipt")
      // No client confirmation for a PayOut.
      expect((yield* clientConfirm(w.store.apiKey, w.incomingOrderId, pngForm())).status).toBe(409)
      expect(yield* footprint(w.orderId)).toEqual(before)

      const completed = yield* confirm(w.trader.token, w.orderId, pdfForm())
      expect(completed.status, completed.text).toBe(200)
      expect(completed.body).toMatchObject({
        id: w.orderId,
        status: "completed",
        direction: "payout",
        payoutDestination: { details: "2202000000000000", holderName: "PETR PETROV", bankCode: "sber" }
      })
      // PayOut posted: store −= A + s, trader += A + t.
      expect(yield* balances(w)).toEqual({
        store: { balance: "83.297298", frozen: "0.000000", available: "83.297298" },
        trader: { balance: "116.540540", frozen: "0.000000", available: "116.540540" }
      })
      expect(yield* footprint(w.orderId)).toMatchObject({ proofs: 1, transfers: "hold,post" })
      expect((yield* confirm(w.trader.token, w.orderId, pdfForm())).status).toBe(409)
    }))

  it.effect("cancel voids the hold; dispute then admin/support resolution; reasons are required; terminal stays terminal", () =>
    Effect.gen(function*() {
      const a = yield* world("payin")
      for (const [body, field] of [[{}, "reason"], [{ reason: "" }, "reason"], [{ reason: "   " }, "reason"], [{ reason: "x".repeat(501) }, "reason"], [{ reason: 5 }, "reason"]] as const) {
        const refused = yield* request("POST", `/api/trader/orders/${a.orderId}/cancel`, { token: a.trader.token, body })
        expect(refused.status, JSON.stringify(body)).toBe(400)
        expect(refused.text).toContain(field)
      }
      const cancelled = yield* request("POST", `/api/trader/orders/${a.orderId}/cancel`, { token: a.trader.token, body: { reason: "no payment arrived" } })
      expect(cancelled.status, cancelled.text).toBe(200)
      expect(cancelled.body.status).toBe("cancelled")
      expect((yield* balances(a)).trader).toEqual({ balance: "100.000000", frozen: "0.000000", available: "100.000000" })
      expect(yield* footprint(a.orderId)).toMatchObject({ incomingStatus: "cancelled", transfers: "hold,void", callbacks: "order.cancelled" })
      const merchantView = yield* request("GET", `/api/merchant/orders/${a.incomingOrderId}`, { apiKey: a.store.apiKey })
      expect(merchantView.body).toMatchObject({ status: "cancelled", order: { status: "cancelled" } })
      const admin = yield* adminToken
      for (const attempt of [
        confirm(a.trader.token, a.orderId),
        request("POST", `/api/trader/orders/${a.orderId}/dispute`, { token: a.trader.token, body: { reason: "late" } }),
        request("POST", `/api/admin/orders/${a.orderId}/status`, { token: admin, body: { status: "completed", reason: "undo" } })
      ]) {
        const response = yield* attempt
        expect(response.status, response.text).toBe(409)
        expect(response.body._tag).toBe("InvalidTransition")
      }

      const b = yield* world("payout")
      const c = yield* world("payin")
      for (const w of [b, c]) {
        const disputed = yield* request("POST", `/api/trader/orders/${w.orderId}/dispute`, { token: w.trader.token, body: { reason: "customer says sent twice" } })
        expect(disputed.status, disputed.text).toBe(200)
        expect(disputed.body.status).toBe("dispute")
      }
      // Only admin/support resolve; the trader may not even call the route.
      const byTrader = yield* request("POST", `/api/admin/orders/${b.orderId}/status`, { token: b.trader.token, body: { status: "completed", reason: "mine" } })
      expect(byTrader.status).toBe(403)
      const byMerchantKey = yield* request("POST", `/api/admin/orders/${b.orderId}/status`, { apiKey: b.store.apiKey, body: { status: "completed", reason: "x" } })
      expect(byMerchantKey.status).toBe(401)
      const badStatus = yield* request("POST", `/api/admin/orders/${b.orderId}/status`, { token: admin, body: { status: "paid", reason: "x" } })
      expect(badStatus.status).toBe(400)
      expect(badStatus.body.field).toBe("status")
      const noReason = yield* request("POST", `/api/admin/orders/${b.orderId}/status`, { token: admin, body: { status: "completed" } })
      expect(noReason.status).toBe(400)
      expect(noReason.body.field).toBe("reason")

      const resolved = yield* request("POST", `/api/admin/orders/${b.orderId}/status`, { token: admin, body: { status: "completed", reason: "bank confirmed the transfer" } })
      expect(resolved.status, resolved.text).toBe(200)
      expect(resolved.body.status).toBe("completed")
      expect((yield* balances(b)).trader.balance).toBe("116.540540")
      const support = yield* newStaff("support")
      const refunded = yield* request("POST", `/api/admin/orders/${c.orderId}/status`, { token: support, body: { status: "cancelled", reason: "customer withdrew" } })
      expect(refunded.status, refunded.text).toBe(200)
      expect((yield* balances(c)).trader).toEqual({ balance: "100.000000", frozen: "0.000000", available: "100.000000" })

      const sql = yield* SqlClient.SqlClient
      const audit = yield* sql<{ action: string; userRole: string; details: { reason: string; from: string } }>`
        SELECT action, user_role, details FROM audit_logs
        WHERE target_entity = 'order' AND target_id IN (${String(b.orderId)}, ${String(c.orderId)}) ORDER BY id`
      expect(audit.map((row) => [row.action, row.userRole, row.details.from, row.details.reason])).toEqual([
        ["order.dispute", "trader", "assigned", "customer says sent twice"],
        ["order.dispute", "trader", "assigned", "customer says sent twice"],
        ["order.completed", "admin", "dispute", "bank confirmed the transfer"],
        ["order.cancelled", "support", "dispute", "customer withdrew"]
      ])
      // Resolved is terminal too.
      expect((yield* request("POST", `/api/admin/orders/${b.orderId}/status`, { token: admin, body: { status: "cancelled", reason: "undo" } })).status).toBe(409)
    }))

  it.effect("foreign traders and stores get 404 and nothing is written", () =>
    Effect.gen(function*() {
      const mine = yield* world("payin")
      const other = yield* world("payin")
      const before = yield* footprint(mine.orderId)
      for (const attempt of [
        confirm(other.trader.token, mine.orderId, pngForm()),
        confirm(other.trader.token, mine.orderId),
        request("POST", `/api/trader/orders/${mine.orderId}/cancel`, { token: other.trader.token, body: { reason: "not mine" } }),
        request("POST", `/api/trader/orders/${mine.orderId}/dispute`, { token: other.trader.token, body: { reason: "not mine" } }),
        clientConfirm(other.store.apiKey, mine.incomingOrderId, pngForm()),
        confirm(mine.trader.token, 99999999),
        request("POST", "/api/admin/orders/99999999/status", { token: yield* adminToken, body: { status: "cancelled", reason: "x" } })
      ]) {
        const response = yield* attempt
        expect(response.status, response.text).toBe(404)
        expect(response.body._tag).toBe("OrderNotFound")
      }
      const listed = yield* request("GET", "/api/trader/orders", { token: other.trader.token })
      expect(listed.body.items.map((item: { id: number }) => item.id)).toEqual([other.orderId])
      expect(yield* footprint(mine.orderId)).toEqual(before)
    }))

  it.effect("bad receipts and bodies: 400/413/415, and nothing is written", () =>
    Effect.gen(function*() {
      const w = yield* world("payin")
      const before = yield* footprint(w.orderId)
      const cases: ReadonlyArray<readonly [number, string, FormData | undefined, Record<string, string>?]> = [
        [400, "receipt", undefined],
        [400, "receipt", form([], { comment: "forgot the file" })],
        [400, "receipt", form([], { receipt: "not a file" })],
        [400, "receipt", form([{ bytes: new Uint8Array(0), type: "image/png", name: "empty.png" }])],
        [415, "receipt", form([{ bytes: new TextEncoder().encode("just text, honest"), type: "image/png", name: "receipt.png" }])],
        [415, "receipt", form([{ bytes: pdfBytes(), type: "image/png", name: "receipt.png" }])],
        [415, "receipt", form([{ bytes: pngBytes(), type: "text/html", name: "receipt.html" }])],
        [413, "receipt", pngForm(maxReceiptBytes + 1)],
        [400, "file", form([{ field: "file", bytes: pngBytes(), type: "image/png", name: "receipt.png" }])],
        [400, "receipt", form([
          { bytes: pngBytes(), type: "image/png", name: "a.png" },
          { bytes: pngBytes(), type: "image/png", name: "b.png" }
        ])]
      ]
      for (const [status, field, body] of cases) {
        const response = yield* clientConfirm(w.store.apiKey, w.incomingOrderId, body)
        expect(response.status, response.text).toBe(status)
        expect(response.body.message ?? "", response.text).toContain(field)
      }
      // Not multipart at all.
      const json = yield* request("POST", `/api/merchant/orders/${w.incomingOrderId}/client-confirmation`, { apiKey: w.store.apiKey, body: { receipt: "aGVsbG8=" } })
      expect(json.status).toBe(415)
      const garbled = yield* request("POST", `/api/merchant/orders/${w.incomingOrderId}/client-confirmation`, {
        apiKey: w.store.apiKey,
        rawBody: "--x\r\nnot really multipart",
        headers: { "content-type": "multipart/form-data; boundary=x" }
      })
      expect(garbled.status).toBeGreaterThanOrEqual(400)
      expect(garbled.status).toBeLessThan(500)
      // Far above every limit: the API-wide body guard answers 413 before reading it.
      const huge = yield* clientConfirm(w.store.apiKey, w.incomingOrderId, pngForm(200 * 1024))
      expect(huge.status).toBe(413)
      // Streamed without a Content-Length, the upload passes the declared-size guard; the receipt limit still holds.
      const chunked = yield* chunkedUpload(`/api/merchant/orders/${w.incomingOrderId}/client-confirmation`, { "x-api-key": w.store.apiKey }, pngBytes(100 * 1024))
      expect(chunked.status, chunked.text).toBe(413)
      const badId = yield* clientConfirm(w.store.apiKey, 0, pngForm())
      expect(badId.status).toBe(400)
      expect(yield* footprint(w.orderId)).toEqual(before)
      // The trader's side is checked the same way.
      const trader = yield* confirm(w.trader.token, w.orderId, form([{ bytes: new TextEncoder().encode("%PNG? no"), type: "image/png", name: "r.png" }]))
      expect(trader.status).toBe(415)
      expect((yield* confirm(w.trader.token, w.orderId, pngForm(maxReceiptBytes + 100))).status).toBe(413)
      expect(yield* footprint(w.orderId)).toEqual(before)
      // Still confirmable afterwards: exactly at the limit is allowed.
      const ok = yield* clientConfirm(w.store.apiKey, w.incomingOrderId, pngForm(maxReceiptBytes))
      expect(ok.status, ok.text).toBe(200)
    }))

  it.effect("20 concurrent trader confirmations: exactly one 200, the rest 409, one posting", () =>
    Effect.gen(function*() {
      for (const direction of ["payin", "payout"] as const) {
        const w = yield* world(direction)
        const responses = yield* Effect.all(
          Array.from({ length: 20 }, () => confirm(w.trader.token, w.orderId, pdfForm())),
          { concurrency: "unbounded" }
        )
        const statuses = responses.map((response) => response.status)
        expect(statuses.filter((status) => status === 200), JSON.stringify(statuses)).toHaveLength(1)
        expect(statuses.filter((status) => status === 409)).toHaveLength(19)
        expect(responses.filter((response) => response.status === 409).every((response) => response.body._tag === "InvalidTransition")).toBe(true)
        expect(yield* postings(w.orderId)).toBe(1)
        expect(yield* footprint(w.orderId)).toMatchObject({ status: "completed", transfers: "hold,post", audits: "order.completed" })
      }
    }).pipe(quiet))

  it.effect("concurrent confirm vs cancel (and the customer's confirmation): exactly one wins", () =>
    Effect.gen(function*() {
      for (let round = 0; round < 4; round++) {
        const w = yield* world("payin")
        const responses = yield* Effect.all([
          confirm(w.trader.token, w.orderId),
          request("POST", `/api/trader/orders/${w.orderId}/cancel`, { token: w.trader.token, body: { reason: "race" } }),
          confirm(w.trader.token, w.orderId),
          request("POST", `/api/trader/orders/${w.orderId}/cancel`, { token: w.trader.token, body: { reason: "race" } })
        ], { concurrency: "unbounded" })
        const statuses = responses.map((response) => response.status)
        expect(statuses.filter((status) => status === 200), JSON.stringify(statuses)).toHaveLength(1)
        expect(statuses.filter((status) => status === 409)).toHaveLength(3)
        const winner = responses.find((response) => response.status === 200)!.body.status
        const after = yield* footprint(w.orderId)
        expect(after.status).toBe(winner)
        expect(after.transfers).toBe(winner === "completed" ? "hold,post" : "hold,void")
      }
    }).pipe(quiet))

  it.effect("trader order list: auth, role, filters and page bounds", () =>
    Effect.gen(function*() {
      const w = yield* world("payout")
      yield* assignedOrder(w.trader, w.store, "payin")
      const noToken = yield* request("GET", "/api/trader/orders")
      expect(noToken.status).toBe(401)
      const asAdmin = yield* request("GET", "/api/trader/orders", { token: yield* adminToken })
      expect(asAdmin.status).toBe(403)
      const asStore = yield* request("GET", "/api/trader/orders", { apiKey: w.store.apiKey })
      expect(asStore.status).toBe(401)
      const all = yield* request("GET", "/api/trader/orders", { token: w.trader.token })
      expect(all.status).toBe(200)
      expect(all.body.total).toBe(2)
      const page = yield* request("GET", "/api/trader/orders?limit=1&offset=1", { token: w.trader.token })
      expect(page.body.items).toHaveLength(1)
      expect(page.body.total).toBe(2)
      expect(page.body.items[0].id).toBe(all.body.items[1].id)
      const payouts = yield* request("GET", "/api/trader/orders?status=completed", { token: w.trader.token })
      expect(payouts.body).toEqual({ items: [], total: 0 })
      for (const [query, field] of [
        ["limit=0", "limit"],
        ["limit=101", "limit"],
        ["limit=abc", "limit"],
        ["offset=-1", "offset"],
        ["offset=100001", "offset"],
        ["status=paid", "status"]
      ] as const) {
        const response = yield* request("GET", `/api/trader/orders?${query}`, { token: w.trader.token })
        expect(response.status, query).toBe(400)
        expect(response.text).toContain(field)
      }
      const badPath = yield* request("POST", "/api/trader/orders/abc/cancel", { token: w.trader.token, body: { reason: "x" } })
      expect(badPath.status).toBe(400)
    }))
})
