import { BigDecimal, Either, Schema } from "effect"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  AmountCrypto,
  AmountFiat,
  completionDeltas,
  computeOrderAmounts,
  CryptoFromNumeric,
  DecimalFromNumeric,
  divideRoundHalfEven,
  formatCrypto,
  formatFiat,
  formatFixed,
  formatPlain,
  formatRate,
  holdAmount,
  type OrderAmounts,
  Percent,
  Rate,
  roundHalfEven,
  SignedCryptoFromNumeric
} from "../../src/domain/Money.js"
import type { Direction } from "../../src/domain/Status.js"

const decimal = BigDecimal.unsafeFromString

/** Independent model: writes unscaled × 10^-scale with exactly `scale` decimals using only strings. */
const toDecimalString = (unscaled: bigint, scale: number): string => {
  const negative = unscaled < 0n
  const digits = (negative ? -unscaled : unscaled).toString().padStart(scale + 1, "0")
  const integerPart = digits.slice(0, digits.length - scale)
  const body = scale === 0 ? integerPart : `${integerPart}.${digits.slice(digits.length - scale)}`
  return negative ? `-${body}` : body
}

/**
 * Independent model of half-even rounding on the digit string: compare the dropped digits with
 * "500…0"; above rounds up, below rounds down, equal rounds to the even neighbour.
 */
const roundHalfEvenModel = (unscaled: bigint, fromScale: number, toScale: number): string => {
  if (toScale >= fromScale) return toDecimalString(unscaled * 10n ** BigInt(toScale - fromScale), toScale)
  const negative = unscaled < 0n
  const digits = (negative ? -unscaled : unscaled).toString().padStart(fromScale + 1, "0")
  const droppedCount = fromScale - toScale
  const kept = digits.slice(0, digits.length - droppedCount)
  const dropped = digits.slice(digits.length - droppedCount)
  const half = "5".padEnd(droppedCount, "0")
  const lastKeptDigitOdd = Number(kept[kept.length - 1]) % 2 === 1
  const roundUp = dropped > half || (dropped === half && lastKeptDigitOdd)
  const magnitude = BigInt(kept) + (roundUp ? 1n : 0n)
  return toDecimalString(negative ? -magnitude : magnitude, toScale)
}

const decodeEither = <A>(schema: Schema.Schema<A, string>, input: unknown) => Schema.decodeUnknownEither(schema)(input)

const decodeErrorMessage = <A>(schema: Schema.Schema<A, string>, input: unknown): string => {
  const result = decodeEither(schema, input)
  if (Either.isRight(result)) throw new Error(`expected ${JSON.stringify(input)} to be rejected`)
  return result.left.message
}

const roundTrip = <A>(schema: Schema.Schema<A, string>, input: string): string =>
  Schema.encodeSync(schema)(Schema.decodeSync(schema)(input))

// Arbitraries -----------------------------------------------------------------------------------

const scaledArbitrary = (min: bigint, max: bigint, scale: number) =>
  fc.bigInt({ min, max }).map((unscaled) => BigDecimal.make(unscaled, scale))

const amountFiatArbitrary = scaledArbitrary(1n, 100_000_000_000n, 2)
const percentArbitrary = scaledArbitrary(0n, 999_999n, 4)
const rateArbitrary = fc.oneof(
  scaledArbitrary(1_000_000n, 1_000_000_000_000n, 8), // 0.01 … 10000: realistic rates
  scaledArbitrary(1n, 10n ** 24n - 1n, 8) // the whole NUMERIC(24,8) range
)
const orderInputArbitrary = fc.record({
  amountFiat: amountFiatArbitrary,
  rate: rateArbitrary,
  storeCommissionPct: percentArbitrary,
  traderRewardPct: percentArbitrary
})
const directionArbitrary = fc.constantFrom<Direction>("payin", "payout")
const cryptoGridArbitrary = scaledArbitrary(0n, 10n ** 18n, 6)
const orderAmountsArbitrary: fc.Arbitrary<OrderAmounts> = fc.record({
  amountCrypto: cryptoGridArbitrary,
  storeCommissionCrypto: cryptoGridArbitrary,
  traderRewardCrypto: cryptoGridArbitrary
})

/** Values whose dropped digits are exactly "500…0": the ties half-even exists for. */
const tieArbitrary = fc
  .record({
    kept: fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }),
    toScale: fc.integer({ min: 0, max: 8 }),
    droppedCount: fc.integer({ min: 1, max: 6 })
  })
  .map(({ droppedCount, kept, toScale }) => ({
    unscaled: kept * 10n ** BigInt(droppedCount) + (kept < 0n ? -5n : 5n) * 10n ** BigInt(droppedCount - 1),
    fromScale: toScale + droppedCount,
    toScale
  }))

const anyRoundingArbitrary = fc
  .record({
    unscaled: fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }),
    fromScale: fc.integer({ min: 0, max: 20 }),
    toScale: fc.integer({ min: 0, max: 10 })
  })

// Tests -----------------------------------------------------------------------------------------

describe("roundHalfEven", () => {
  it("rounds known ties to the even neighbour", () => {
    expect(formatCrypto(roundHalfEven(decimal("0.0000025"), 6))).toBe("0.000002")
    expect(formatCrypto(roundHalfEven(decimal("0.0000035"), 6))).toBe("0.000004")
    expect(formatCrypto(roundHalfEven(decimal("-0.0000025"), 6))).toBe("-0.000002")
    expect(formatCrypto(roundHalfEven(decimal("-0.0000035"), 6))).toBe("-0.000004")
    expect(formatCrypto(roundHalfEven(decimal("1.00000250001"), 6))).toBe("1.000003")
    expect(formatFixed(roundHalfEven(decimal("2.5"), 0), 0)).toBe("2")
    expect(formatFixed(roundHalfEven(decimal("3.5"), 0), 0)).toBe("4")
  })

  it("matches the string model on random values", () => {
    fc.assert(
      fc.property(anyRoundingArbitrary, ({ fromScale, toScale, unscaled }) => {
        const rounded = roundHalfEven(BigDecimal.make(unscaled, fromScale), toScale)
        expect(formatFixed(rounded, toScale)).toBe(roundHalfEvenModel(unscaled, fromScale, toScale))
      }),
      { numRuns: 2000 }
    )
  })

  it("matches the string model on exact ties like x.xxxxxx5", () => {
    fc.assert(
      fc.property(tieArbitrary, ({ fromScale, toScale, unscaled }) => {
        const rounded = roundHalfEven(BigDecimal.make(unscaled, fromScale), toScale)
        expect(formatFixed(rounded, toScale)).toBe(roundHalfEvenModel(unscaled, fromScale, toScale))
      }),
      { numRuns: 2000 }
    )
  })
})

describe("divideRoundHalfEven", () => {
  it("rounds known quotients", () => {
    expect(formatCrypto(divideRoundHalfEven(decimal("1"), decimal("3"), 6))).toBe("0.333333")
    expect(formatCrypto(divideRoundHalfEven(decimal("2"), decimal("3"), 6))).toBe("0.666667")
    expect(formatCrypto(divideRoundHalfEven(decimal("-2"), decimal("3"), 6))).toBe("-0.666667")
    expect(formatCrypto(divideRoundHalfEven(decimal("1"), decimal("400000"), 6))).toBe("0.000002") // 0.0000025 tie
    expect(formatCrypto(divideRoundHalfEven(decimal("3"), decimal("2000000"), 6))).toBe("0.000002") // 0.0000015 tie
    expect(formatCrypto(divideRoundHalfEven(decimal("1500.00"), decimal("92.5"), 6))).toBe("16.216216")
    expect(() => divideRoundHalfEven(decimal("1"), decimal("0"), 6)).toThrow(/zero/)
  })

  it("rounds the true quotient even where a 100-digit division would see a false tie", () => {
    // x / y = 0.0000005 + 1/(3·10^120): just above a tie, so the right answer rounds up.
    const dividend = BigDecimal.make(3n * 10n ** 114n + 2n, 0)
    const divisor = BigDecimal.make(6n * 10n ** 120n, 0)
    expect(formatCrypto(divideRoundHalfEven(dividend, divisor, 6))).toBe("0.000001")
    // Documents why divideRoundHalfEven exists: BigDecimal.divide stops at 100 digits.
    expect(formatCrypto(roundHalfEven(BigDecimal.unsafeDivide(dividend, divisor), 6))).toBe("0.000000")
  })

  it("is the nearest 6-decimal value to the exact quotient, ties to even", () => {
    const operand = fc.record({
      unscaled: fc.bigInt({ min: -(10n ** 26n), max: 10n ** 26n }),
      scale: fc.integer({ min: -4, max: 12 })
    })
    fc.assert(
      fc.property(operand, operand, (x, y) => {
        fc.pre(y.unscaled !== 0n)
        const dividend = BigDecimal.make(x.unscaled, x.scale)
        const divisor = BigDecimal.make(y.unscaled, y.scale)
        const quotient = divideRoundHalfEven(dividend, divisor, 6)
        // |x − q·y| ≤ ½·10^-6·|y|  ⇔  q is within half a unit of x/y (exact BigDecimal arithmetic).
        const twiceError = BigDecimal.multiply(
          BigDecimal.abs(BigDecimal.subtract(dividend, BigDecimal.multiply(quotient, divisor))),
          BigDecimal.fromBigInt(2n)
        )
        const unitTimesDivisor = BigDecimal.multiply(BigDecimal.make(1n, 6), BigDecimal.abs(divisor))
        expect(BigDecimal.lessThanOrEqualTo(twiceError, unitTimesDivisor)).toBe(true)
        if (BigDecimal.equals(twiceError, unitTimesDivisor)) {
          expect(BigDecimal.scale(quotient, 6).value % 2n).toBe(0n)
        }
      }),
      { numRuns: 2000 }
    )
  })
})

describe("decimal string schemas", () => {
  const invalidFiat: ReadonlyArray<readonly [string, string]> = [
    ["", "must not be empty"],
    ["1e3", "must not use exponent notation"],
    ["1E-2", "must not use exponent notation"],
    ["-1", "must not be negative"],
    ["+1", "must not have a leading '+'"],
    ["0", "must be greater than 0"],
    ["0.00", "must be greater than 0"],
    ["1.234", "must be a decimal string with at most 2 decimal places"],
    ["1.000", "must be a decimal string with at most 2 decimal places"],
    [" 1", "must not contain whitespace"],
    ["1 ", "must not contain whitespace"],
    ["1\n", "must not contain whitespace"],
    ["1,5", "must be a plain decimal string"],
    ["1_000", "must be a plain decimal string"],
    ["abc", "must be a plain decimal string"],
    ["--1", "must not be negative"],
    ["Infinity", "must be a finite decimal number"],
    ["-Infinity", "must not be negative"],
    ["NaN", "must be a finite decimal number"],
    ["0x10", "must be a plain decimal string"],
    ["1.", "must have digits on both sides of the decimal point"],
    // ".5" is rejected: pg and our own encoder always write "0.5", so anything else is a client bug.
    [".5", "must have digits on both sides of the decimal point"],
    [".", "must have digits on both sides of the decimal point"],
    ["01.00", "must not have leading zeros"],
    ["1.2.3", "must be a plain decimal string"],
    ["1000000000.01", "must be at most 1000000000.00"],
    ["99999999999", "must be at most 1000000000.00"],
    ["1234567890123456789", "must have at most 18 integer digits"],
    ["9".repeat(500), "must have at most 18 integer digits"]
  ]

  it.each(invalidFiat)("AmountFiat rejects %j", (input, expected) => {
    const message = decodeErrorMessage(AmountFiat, input)
    expect(message).toContain(expected)
    expect(message).toContain("AmountFiat")
  })

  it("rejects JS numbers: money never travels as a float", () => {
    expect(decodeErrorMessage(AmountFiat, 1500)).toContain("Expected string")
    expect(decodeErrorMessage(DecimalFromNumeric, 0.1)).toContain("Expected string")
  })

  it.each<readonly [Schema.Schema<BigDecimal.BigDecimal, string>, string, string]>([
    [AmountCrypto, "1.2345678", "at most 6 decimal places"],
    [AmountCrypto, "0.000000", "must be greater than 0"],
    [AmountCrypto, "1000000000.000001", "must be at most 1000000000"],
    [CryptoFromNumeric, "-0.000001", "must not be negative"],
    [CryptoFromNumeric, "1.0000001", "at most 6 decimal places"],
    [SignedCryptoFromNumeric, "1.0000001", "at most 6 decimal places"],
    [SignedCryptoFromNumeric, "+1.000000", "must not have a leading '+'"],
    [SignedCryptoFromNumeric, "-1234567890123456789.000000", "at most 18 integer digits"],
    [Rate, "0", "must be greater than 0"],
    [Rate, "-92.5", "must not be negative"],
    [Rate, "1.123456789", "at most 8 decimal places"],
    [Rate, "12345678901234567", "at most 16 integer digits"],
    [Percent, "100", "must be less than 100"],
    [Percent, "100.0000", "must be less than 100"],
    [Percent, "-0.5", "must not be negative"],
    [Percent, "1.12345", "at most 4 decimal places"],
    [DecimalFromNumeric, "NaN", "must be a finite decimal number"],
    [DecimalFromNumeric, "-Infinity", "must be a finite decimal number"],
    [DecimalFromNumeric, "1e5", "must not use exponent notation"],
    [DecimalFromNumeric, "", "must not be empty"]
  ])("%#: rejects %j with a message", (schema, input, expected) => {
    expect(decodeErrorMessage(schema, input)).toContain(expected)
  })

  it("accepts the edges of each range", () => {
    expect(roundTrip(AmountFiat, "0.01")).toBe("0.01")
    expect(roundTrip(AmountFiat, "1000000000.00")).toBe("1000000000.00")
    expect(roundTrip(AmountFiat, "1500")).toBe("1500.00")
    expect(roundTrip(AmountFiat, "1500.5")).toBe("1500.50")
    expect(roundTrip(AmountCrypto, "0.000001")).toBe("0.000001")
    expect(roundTrip(CryptoFromNumeric, "0")).toBe("0.000000")
    expect(roundTrip(SignedCryptoFromNumeric, "-15.891892")).toBe("-15.891892")
    expect(roundTrip(Rate, "92.5")).toBe("92.50000000")
    expect(roundTrip(Percent, "0")).toBe("0.0000")
    expect(roundTrip(Percent, "99.9999")).toBe("99.9999")
    expect(roundTrip(DecimalFromNumeric, "-0.12345678901234567890")).toBe("-0.12345678901234567890")
    expect(roundTrip(DecimalFromNumeric, "123456789012345678901234567890")).toBe("123456789012345678901234567890")
  })

  it.each<readonly [string, Schema.Schema<BigDecimal.BigDecimal, string>, bigint, bigint, number]>([
    ["AmountFiat", AmountFiat, 1n, 100_000_000_000n, 2],
    ["AmountCrypto", AmountCrypto, 1n, 1_000_000_000_000_000n, 6],
    ["CryptoFromNumeric", CryptoFromNumeric, 0n, 10n ** 24n - 1n, 6],
    ["SignedCryptoFromNumeric", SignedCryptoFromNumeric, -(10n ** 24n) + 1n, 10n ** 24n - 1n, 6],
    ["Rate", Rate, 1n, 10n ** 24n - 1n, 8],
    ["Percent", Percent, 0n, 999_999n, 4]
  ])("%s: canonical strings round-trip through decode and encode", (_name, schema, min, max, scale) => {
    fc.assert(
      fc.property(fc.bigInt({ min, max }), (unscaled) => {
        const canonical = toDecimalString(unscaled, scale)
        expect(roundTrip(schema, canonical)).toBe(canonical)
      }),
      { numRuns: 500 }
    )
  })

  it("DecimalFromNumeric round-trips any sign and scale exactly as written", () => {
    const numeric = fc.record({
      unscaled: fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }),
      scale: fc.integer({ min: 0, max: 30 })
    })
    fc.assert(
      fc.property(numeric, ({ scale, unscaled }) => {
        const canonical = toDecimalString(unscaled, scale)
        fc.pre(!canonical.startsWith("-0") || /[1-9]/.test(canonical)) // "-0.00" is not canonical
        expect(roundTrip(DecimalFromNumeric, canonical)).toBe(canonical)
      }),
      { numRuns: 1000 }
    )
  })

  it("never throws on arbitrary input: decodes to a re-encodable value or fails with a message", () => {
    const nearMiss = fc.stringMatching(/^[-+ 0-9.eE,x]{0,14}$/)
    fc.assert(
      fc.property(fc.oneof(nearMiss, fc.string({ unit: "grapheme", maxLength: 20 })), (input) => {
        const result = decodeEither(AmountFiat, input)
        if (Either.isLeft(result)) {
          expect(result.left.message).toContain("AmountFiat")
        } else {
          const encoded = Schema.encodeSync(AmountFiat)(result.right)
          expect(encoded).toMatch(/^(0|[1-9][0-9]*)\.[0-9]{2}$/)
          expect(BigDecimal.equals(Schema.decodeSync(AmountFiat)(encoded), result.right)).toBe(true)
        }
      }),
      { numRuns: 3000 }
    )
  })

  it("refuses to encode a value that was never rounded to the column's scale", () => {
    const tooPrecise = Schema.encodeEither(AmountFiat)(decimal("1.234"))
    expect(Either.isLeft(tooPrecise) && tooPrecise.left.message).toContain("at most 2 decimal places")
    const negative = Schema.encodeEither(CryptoFromNumeric)(decimal("-1"))
    expect(Either.isLeft(negative) && negative.left.message).toContain("must not be negative")
  })
})

describe("format helpers", () => {
  it("write exactly the unit's decimals, never exponent notation", () => {
    expect(formatFiat(decimal("1500"))).toBe("1500.00")
    expect(formatFiat(BigDecimal.normalize(decimal("1500")))).toBe("1500.00")
    expect(formatCrypto(decimal("12.345678"))).toBe("12.345678")
    expect(formatCrypto(decimal("-0.5"))).toBe("-0.500000")
    expect(formatCrypto(decimal("0"))).toBe("0.000000")
    expect(formatRate(decimal("92.5"))).toBe("92.50000000")
    expect(formatPlain(BigDecimal.make(1n, 20))).toBe("0.00000000000000000001")
    expect(formatPlain(BigDecimal.make(15n, -2))).toBe("1500")
  })

  it("throw rather than silently round", () => {
    expect(() => formatFiat(decimal("1.005"))).toThrow(/round it before formatting/)
  })
})

describe("computeOrderAmounts", () => {
  const knownInput = {
    amountFiat: decimal("1500.00"),
    rate: decimal("92.5"),
    storeCommissionPct: decimal("2.5"),
    traderRewardPct: decimal("2")
  }

  it("prices the known vector: 1500.00 RUB at 92.5, store 2.5 %, trader 2 %", () => {
    // 1500 / 92.5 = 16.2162162…  → 16.216216
    // 16.216216 × 2.5 / 100 = 0.4054054 → 0.405405
    // 16.216216 × 2 / 100 = 0.32432432 → 0.324324
    const amounts = computeOrderAmounts(knownInput)
    expect(formatCrypto(amounts.amountCrypto)).toBe("16.216216")
    expect(formatCrypto(amounts.storeCommissionCrypto)).toBe("0.405405")
    expect(formatCrypto(amounts.traderRewardCrypto)).toBe("0.324324")
  })

  it("posts the known vector's deltas and holds", () => {
    const amounts = computeOrderAmounts(knownInput)
    const payIn = completionDeltas("payin", amounts)
    expect([payIn.store, payIn.trader, payIn.platform].map(formatCrypto)).toEqual(["15.810811", "-15.891892", "0.081081"])
    const payOut = completionDeltas("payout", amounts)
    expect([payOut.store, payOut.trader, payOut.platform].map(formatCrypto)).toEqual(["-16.621621", "16.540540", "0.081081"])
    expect(holdAmount("payin", amounts)).toEqual({ account: "trader", amount: decimal("15.891892") })
    expect(holdAmount("payout", amounts)).toEqual({ account: "store", amount: decimal("16.621621") })
  })

  it("rounds a tie in A to even", () => {
    // 0.05 / 20000 = 0.0000025 exactly → 0.000002 (even), not 0.000003.
    const amounts = computeOrderAmounts({ ...knownInput, amountFiat: decimal("0.05"), rate: decimal("20000") })
    expect(formatCrypto(amounts.amountCrypto)).toBe("0.000002")
  })

  it("keeps A ≥ 0 and 0 ≤ s, t ≤ A, all on the 6-decimal grid", () => {
    fc.assert(
      fc.property(orderInputArbitrary, (input) => {
        const { amountCrypto, storeCommissionCrypto, traderRewardCrypto } = computeOrderAmounts(input)
        expect(BigDecimal.isNegative(amountCrypto)).toBe(false)
        for (const part of [storeCommissionCrypto, traderRewardCrypto]) {
          expect(BigDecimal.isNegative(part)).toBe(false)
          expect(BigDecimal.lessThanOrEqualTo(part, amountCrypto)).toBe(true)
        }
        for (const value of [amountCrypto, storeCommissionCrypto, traderRewardCrypto]) {
          expect(BigDecimal.normalize(value).scale).toBeLessThanOrEqual(6)
        }
      }),
      { numRuns: 2000 }
    )
  })

  it("rejects inputs the schemas would never produce", () => {
    expect(() => computeOrderAmounts({ ...knownInput, rate: decimal("0") })).toThrow(/rate must be > 0/)
    expect(() => computeOrderAmounts({ ...knownInput, amountFiat: decimal("-1") })).toThrow(/amountFiat/)
    expect(() => computeOrderAmounts({ ...knownInput, traderRewardPct: decimal("100") })).toThrow(/traderRewardPct/)
  })
})

describe("ledger deltas", () => {
  const sumOf = ({ platform, store, trader }: ReturnType<typeof completionDeltas>) =>
    BigDecimal.sumAll([store, trader, platform])

  it("always sum to exactly zero, for computed and arbitrary amounts", () => {
    fc.assert(
      fc.property(directionArbitrary, fc.oneof(orderInputArbitrary.map(computeOrderAmounts), orderAmountsArbitrary), (direction, amounts) => {
        expect(BigDecimal.isZero(sumOf(completionDeltas(direction, amounts)))).toBe(true)
      }),
      { numRuns: 2000 }
    )
  })

  it("the hold is exactly what completion takes from the held account", () => {
    fc.assert(
      fc.property(directionArbitrary, orderInputArbitrary, (direction, input) => {
        const amounts = computeOrderAmounts(input)
        const hold = holdAmount(direction, amounts)
        const deltas = completionDeltas(direction, amounts)
        expect(hold.account).toBe(direction === "payin" ? "trader" : "store")
        expect(BigDecimal.isNegative(hold.amount)).toBe(false)
        expect(BigDecimal.equals(hold.amount, BigDecimal.negate(deltas[hold.account]))).toBe(true)
      }),
      { numRuns: 1000 }
    )
  })
})
