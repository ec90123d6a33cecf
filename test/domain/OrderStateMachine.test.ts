import { Either } from "effect"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  type Actor,
  actors,
  decideTransition,
  findRule,
  isTerminal,
  orderStatuses,
  refusalToError,
  terminalStatuses,
  transitionTable
} from "../../src/domain/OrderStateMachine.js"
import type { Direction, OrderStatus } from "../../src/domain/Status.js"

const status = fc.constantFrom(...orderStatuses)
const actor = fc.constantFrom(...actors)
const direction = fc.constantFrom<Direction>("payin", "payout")
const move = fc.record({
  from: status,
  to: status,
  actor,
  direction,
  hasReceipt: fc.boolean(),
  expired: fc.boolean()
})

const decide = (m: { from: OrderStatus; to: OrderStatus; actor: Actor; direction: Direction; hasReceipt: boolean; expired: boolean }) =>
  decideTransition(m.from, m.to, m.actor, m.direction, m.hasReceipt, m.expired)

describe("OrderStateMachine", () => {
  it("the table has one row per (from, to), and names only known statuses and actors", () => {
    const keys = transitionTable.map((rule) => `${rule.from}->${rule.to}`)
    expect(new Set(keys).size).toBe(keys.length)
    for (const rule of transitionTable) {
      expect(orderStatuses).toContain(rule.from)
      expect(orderStatuses).toContain(rule.to)
      expect(rule.from).not.toBe(rule.to)
      expect(rule.actors.length).toBeGreaterThan(0)
      for (const who of rule.actors) expect(actors).toContain(who)
    }
  })

  it("terminal states never leave, whoever asks and whatever they send", () => {
    fc.assert(fc.property(move, (m) => {
      if (!isTerminal(m.from)) return
      const decision = decide(m)
      expect(Either.isLeft(decision)).toBe(true)
      if (Either.isLeft(decision)) {
        expect(decision.left._tag).toBe("NoSuchTransition")
        expect(refusalToError(decision.left)._tag).toBe("InvalidTransition")
      }
    }), { numRuns: 2000 })
    for (const terminal of terminalStatuses) {
      expect(transitionTable.filter((rule) => rule.from === terminal)).toEqual([])
    }
  })

  it("every allowed move is a row of the table, and the row's conditions hold", () => {
    fc.assert(fc.property(move, (m) => {
      const decision = decide(m)
      if (Either.isLeft(decision)) return
      const rule = decision.right
      expect(transitionTable).toContain(rule)
      expect(rule.from).toBe(m.from)
      expect(rule.to).toBe(m.to)
      expect(rule.actors).toContain(m.actor)
      if (rule.directions !== undefined) expect(rule.directions).toContain(m.direction)
      if (rule.requiresExpiry === true) expect(m.expired).toBe(true)
      if (rule.requiresReceipt === "always" || (rule.requiresReceipt === "payout" && m.direction === "payout")) {
        expect(m.hasReceipt).toBe(true)
      }
    }), { numRuns: 5000 })
  })

  it("every row is reachable: for each row some actor, direction and receipt get it allowed", () => {
    for (const rule of transitionTable) {
      const who = rule.actors[0]!
      const dir = rule.directions?.[0] ?? "payout"
      expect(Either.isRight(decideTransition(rule.from, rule.to, who, dir, true, true))).toBe(true)
    }
  })

  it("the ledger effect depends only on the target: completed posts, cancelled/failed void, others keep the hold", () => {
    fc.assert(fc.property(move, (m) => {
      const decision = decide(m)
      if (Either.isLeft(decision)) return
      const expected = m.to === "completed" ? "post" : m.to === "cancelled" || m.to === "failed" ? "void" : "none"
      expect(decision.right.ledger).toBe(expected)
    }), { numRuns: 5000 })
    for (const rule of transitionTable) {
      const expected = rule.to === "completed" ? "post" : rule.to === "cancelled" || rule.to === "failed" ? "void" : "none"
      expect(rule.ledger, `${rule.from} -> ${rule.to}`).toBe(expected)
    }
  })

  it("a refusal maps to the right error: 409 for moves this caller cannot make now, 400 for a missing receipt", () => {
    fc.assert(fc.property(move, (m) => {
      const decision = decide(m)
      if (Either.isRight(decision)) return
      const error = refusalToError(decision.left)
      switch (decision.left._tag) {
        case "NoSuchTransition":
          expect(findRule(m.from, m.to)).toBeUndefined()
          expect(error._tag).toBe("InvalidTransition")
          break
        case "WrongDirection":
        case "NotExpired":
          expect(error._tag).toBe("InvalidTransition")
          break
        case "ActorNotAllowed":
          expect(findRule(m.from, m.to)!.actors).not.toContain(m.actor)
          expect(error._tag).toBe("InvalidTransition")
          break
        case "ReceiptRequired":
          expect(m.hasReceipt).toBe(false)
          expect(error._tag).toBe("ValidationError")
          break
      }
    }), { numRuns: 3000 })
  })

  it("a random walk by anyone never leaves a terminal state and settles at most once", () => {
    fc.assert(fc.property(
      direction,
      fc.array(fc.record({ to: status, actor, hasReceipt: fc.boolean(), expired: fc.boolean() }), { maxLength: 30 }),
      (dir, steps) => {
        let current: OrderStatus = "assigned"
        let settlements = 0
        for (const step of steps) {
          const decision = decideTransition(current, step.to, step.actor, dir, step.hasReceipt, step.expired)
          if (Either.isLeft(decision)) continue
          expect(isTerminal(current)).toBe(false)
          if (decision.right.ledger !== "none") settlements++
          current = decision.right.to
        }
        expect(settlements).toBeLessThanOrEqual(1)
        expect(settlements === 1).toBe(isTerminal(current))
      }
    ), { numRuns: 2000 })
  })

  it("SPEC §5.8 moves, spelled out", () => {
    const allowed = (from: OrderStatus, to: OrderStatus, who: Actor, dir: Direction, receipt = false, expired = false) =>
      Either.isRight(decideTransition(from, to, who, dir, receipt, expired))
    // customer confirmation: PayIn only, with a receipt
    expect(allowed("assigned", "pending_trader_confirmation", "merchant", "payin", true)).toBe(true)
    expect(allowed("assigned", "pending_trader_confirmation", "customer", "payin", true)).toBe(true)
    expect(allowed("assigned", "pending_trader_confirmation", "merchant", "payin", false)).toBe(false)
    expect(allowed("assigned", "pending_trader_confirmation", "merchant", "payout", true)).toBe(false)
    expect(allowed("assigned", "pending_trader_confirmation", "trader", "payin", true)).toBe(false)
    // trader confirmation: PayOut needs the trader's receipt
    expect(allowed("assigned", "completed", "trader", "payin")).toBe(true)
    expect(allowed("pending_trader_confirmation", "completed", "trader", "payin")).toBe(true)
    expect(allowed("assigned", "completed", "trader", "payout")).toBe(false)
    expect(allowed("assigned", "completed", "trader", "payout", true)).toBe(true)
    expect(allowed("assigned", "completed", "merchant", "payin")).toBe(false)
    expect(allowed("assigned", "completed", "admin", "payin")).toBe(false)
    // cancel and dispute from open states
    for (const who of ["trader", "merchant", "support", "admin"] as const) {
      expect(allowed("assigned", "cancelled", who, "payin")).toBe(true)
      expect(allowed("pending_trader_confirmation", "dispute", who, "payin")).toBe(true)
    }
    expect(allowed("assigned", "cancelled", "customer", "payin")).toBe(false)
    // resolutions: admin/support only
    for (const from of ["dispute", "requires_attention"] as const) {
      for (const to of ["completed", "cancelled"] as const) {
        expect(allowed(from, to, "admin", "payout")).toBe(true)
        expect(allowed(from, to, "support", "payin")).toBe(true)
        expect(allowed(from, to, "trader", "payin", true)).toBe(false)
        expect(allowed(from, to, "merchant", "payin")).toBe(false)
      }
    }
    // timeouts: system only, only once expired
    expect(allowed("assigned", "failed", "system", "payin", false, true)).toBe(true)
    expect(allowed("assigned", "failed", "system", "payin", false, false)).toBe(false)
    expect(allowed("assigned", "failed", "admin", "payin", false, true)).toBe(false)
    expect(allowed("pending_trader_confirmation", "requires_attention", "system", "payin", false, true)).toBe(true)
    expect(allowed("pending_trader_confirmation", "failed", "system", "payin", false, true)).toBe(false)
    expect(allowed("assigned", "requires_attention", "system", "payin", false, true)).toBe(false)
  })
})
