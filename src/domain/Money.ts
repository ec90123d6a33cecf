import { BigDecimal, Either, ParseResult, Schema } from "effect"
import type { Direction } from "./Status.js"

/**
 * Money (SPEC §4, §5.5). Every amount is an `effect/BigDecimal` from the wire to the ledger:
 * a JS number cannot hold 0.1 exactly and silently loses digits above 2^53, so money is only
 * ever read from decimal strings (API JSON, and Postgres NUMERIC, which `pg` returns as
 * strings) and written back as fixed-scale decimal strings.
 */

// Scales of the NUMERIC columns (SPEC §4): fiat (20,2), crypto (24,6), rates (24,8), percent (7,4).
export const fiatScale = 2
export const cryptoScale = 6
export const rateScale = 8
export const percentScale = 4

/** A sane ceiling for one order; far below the column's 18 integer digits, so typos fail loudly. */
export const amountFiatMax: BigDecimal.BigDecimal = BigDecimal.unsafeFromString("1000000000.00")
export const amountCryptoMax: BigDecimal.BigDecimal = BigDecimal.unsafeFromString("1000000000.000000")

const zero = BigDecimal.fromBigInt(0n)
const hundred = BigDecimal.fromBigInt(100n)

// Postgres' own NUMERIC limits, so the generic decoder accepts anything `pg` can hand us.
const postgresIntegerDigitsMax = 131_072
const postgresScaleMax = 16_383

// Keeps error messages readable when the rejected input is huge.
const quotedInputLengthMax = 40

// ---------------------------------------------------------------------------------------------
// Formatting

/**
 * Writes `value` with exactly `scale` decimals, never in exponent notation (unlike
 * `BigDecimal.format`, which switches to it at 16 decimals). Throws if `value` has more
 * decimals than `scale`: formatting must never round money; call `roundHalfEven` first.
 */
export const formatFixed = (value: BigDecimal.BigDecimal, scale: number): string => {
  const normalized = BigDecimal.normalize(value)
  if (normalized.scale > scale) {
    throw new RangeError(`${BigDecimal.format(value)} has more than ${scale} decimals; round it before formatting`)
  }
  const digits = BigDecimal.scale(normalized, scale).value
  const negative = digits < 0n
  const absoluteDigits = (negative ? -digits : digits).toString().padStart(scale + 1, "0")
  const integerPart = absoluteDigits.slice(0, absoluteDigits.length - scale)
  const fractionPart = absoluteDigits.slice(absoluteDigits.length - scale)
  const unsigned = scale === 0 ? integerPart : `${integerPart}.${fractionPart}`
  return negative ? `-${unsigned}` : unsigned
}

/** Writes `value` at its own scale (as NUMERIC would), never in exponent notation. */
export const formatPlain = (value: BigDecimal.BigDecimal): string => formatFixed(value, Math.max(value.scale, 0))

export const formatFiat = (value: BigDecimal.BigDecimal): string => formatFixed(value, fiatScale)
export const formatCrypto = (value: BigDecimal.BigDecimal): string => formatFixed(value, cryptoScale)
export const formatRate = (value: BigDecimal.BigDecimal): string => formatFixed(value, rateScale)
export const formatPercent = (value: BigDecimal.BigDecimal): string => formatFixed(value, percentScale)

// ---------------------------------------------------------------------------------------------
// Parsing decimal strings

interface Bound {
  readonly value: BigDecimal.BigDecimal
  readonly inclusive: boolean
}

interface DecimalRules {
  /** Names the field in error messages. */
  readonly label: string
  readonly allowNegative: boolean
  readonly integerDigitsMax: number
  readonly scaleMax: number
  readonly minimum?: Bound
  readonly maximum?: Bound
}

// Canonical form only: optional "-", no leading zeros, digits on both sides of ".". ".5" and
// "1." are rejected: pg and our own encoders always write "0.5", so other shapes are client bugs.
const plainDecimalPattern = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/
const exponentPattern = /^[+-]?[0-9.]+[eE][+-]?[0-9]+$/
const nonFinitePattern = /^[+-]?(nan|inf|infinity)$/i
const bareDecimalPointPattern = /^-?([0-9]*\.|\.[0-9]*)$/
const leadingZeroPattern = /^-?0[0-9]/

const quote = (input: string): string =>
  JSON.stringify(input.length > quotedInputLengthMax ? `${input.slice(0, quotedInputLengthMax)}…` : input)

/** Names the first thing wrong with the shape of `input`, or `undefined` when it is canonical. */
const describeSyntaxError = (input: string, rules: DecimalRules): string | undefined => {
  if (input === "") return "must not be empty"
  if (/\s/.test(input)) return "must not contain whitespace"
  if (input.startsWith("+")) return "must not have a leading '+'"
  if (input.startsWith("-") && !rules.allowNegative) return "must not be negative (no sign allowed)"
  if (nonFinitePattern.test(input)) return "must be a finite decimal number"
  if (exponentPattern.test(input)) return "must not use exponent notation"
  if (bareDecimalPointPattern.test(input)) return "must have digits on both sides of the decimal point"
  if (leadingZeroPattern.test(input)) return "must not have leading zeros"
  if (!plainDecimalPattern.test(input)) {
    return `must be a plain decimal string like "1500.00" (digits, optionally "." and up to ${rules.scaleMax} decimals)`
  }
  return undefined
}

/** Names what is wrong with the digit counts of a canonical decimal string. */
const describeDigitsError = (integerPart: string, fractionPart: string, rules: DecimalRules): string | undefined => {
  if (integerPart.length > rules.integerDigitsMax) return `must have at most ${rules.integerDigitsMax} integer digits`
  if (fractionPart.length > rules.scaleMax) {
    return `must be a decimal string with at most ${rules.scaleMax} decimal places`
  }
  return undefined
}

/** Parses a canonical decimal string without going through a float or exponent handling. */
const parseDecimalString = (input: string, rules: DecimalRules): Either.Either<BigDecimal.BigDecimal, string> => {
  const syntaxError = describeSyntaxError(input, rules)
  if (syntaxError !== undefined) return Either.left(`${rules.label} ${syntaxError}, got ${quote(input)}`)
  const negative = input.startsWith("-")
  const [integerPart = "", fractionPart = ""] = (negative ? input.slice(1) : input).split(".")
  const digitsError = describeDigitsError(integerPart, fractionPart, rules)
  if (digitsError !== undefined) return Either.left(`${rules.label} ${digitsError}, got ${quote(input)}`)
  const unscaled = BigInt(`${negative ? "-" : ""}${integerPart}${fractionPart}`)
  return Either.right(BigDecimal.make(unscaled, fractionPart.length))
}

const describeMinimumError = (value: BigDecimal.BigDecimal, minimum: Bound): string | undefined => {
  const tooSmall = minimum.inclusive
    ? BigDecimal.lessThan(value, minimum.value)
    : BigDecimal.lessThanOrEqualTo(value, minimum.value)
  if (!tooSmall) return undefined
  return `must be ${minimum.inclusive ? "at least" : "greater than"} ${formatPlain(minimum.value)}`
}

const describeMaximumError = (value: BigDecimal.BigDecimal, maximum: Bound): string | undefined => {
  const tooLarge = maximum.inclusive
    ? BigDecimal.greaterThan(value, maximum.value)
    : BigDecimal.greaterThanOrEqualTo(value, maximum.value)
  if (!tooLarge) return undefined
  return `must be ${maximum.inclusive ? "at most" : "less than"} ${formatPlain(maximum.value)}`
}

const describeScaleOrSignError = (value: BigDecimal.BigDecimal, rules: DecimalRules): string | undefined => {
  if (BigDecimal.normalize(value).scale > rules.scaleMax) return `must have at most ${rules.scaleMax} decimal places`
  if (!rules.allowNegative && BigDecimal.isNegative(value)) return "must not be negative"
  return undefined
}

/**
 * Checks a decoded (or about-to-be-encoded) value. Runs on both directions, so encoding a value
 * that was computed but never rounded fails instead of being silently truncated.
 */
const describeValueError = (value: BigDecimal.BigDecimal, rules: DecimalRules): string | undefined => {
  const error = describeScaleOrSignError(value, rules) ??
    (rules.minimum === undefined ? undefined : describeMinimumError(value, rules.minimum)) ??
    (rules.maximum === undefined ? undefined : describeMaximumError(value, rules.maximum))
  return error === undefined ? undefined : `${rules.label} ${error}, got ${formatPlain(value)}`
}

/**
 * A Schema from a decimal string to BigDecimal. `encodeScale` fixes the number of decimals
 * written back; `undefined` writes the value at its own scale (for the generic NUMERIC reader).
 */
const decimalString = (
  rules: DecimalRules,
  encodeScale: number | undefined,
  description: string
): Schema.Schema<BigDecimal.BigDecimal, string> => {
  const checkedValue = Schema.BigDecimalFromSelf.pipe(Schema.filter((value) => describeValueError(value, rules)))
  return Schema.transformOrFail(Schema.String, checkedValue, {
    strict: true,
    decode: (input, _options, ast) =>
      Either.match(parseDecimalString(input, rules), {
        onLeft: (message) => ParseResult.fail(new ParseResult.Type(ast, input, message)),
        onRight: (value) => ParseResult.succeed(value)
      }),
    encode: (value) => ParseResult.succeed(encodeScale === undefined ? formatPlain(value) : formatFixed(value, encodeScale))
  }).annotations({ identifier: rules.label, description })
}

// ---------------------------------------------------------------------------------------------
// Schemas

/** A fiat amount from the API or NUMERIC(20,2): > 0, ≤ 1_000_000_000.00, at most 2 decimals. */
export const AmountFiat = decimalString(
  {
    label: "AmountFiat",
    allowNegative: false,
    integerDigitsMax: 18,
    scaleMax: fiatScale,
    minimum: { value: zero, inclusive: false },
    maximum: { value: amountFiatMax, inclusive: true }
  },
  fiatScale,
  "A positive fiat amount as a decimal string with at most 2 decimals, e.g. \"1500.00\""
)

/** A crypto amount from the API: > 0, ≤ 1_000_000_000.000000, at most 6 decimals. */
export const AmountCrypto = decimalString(
  {
    label: "AmountCrypto",
    allowNegative: false,
    integerDigitsMax: 18,
    scaleMax: cryptoScale,
    minimum: { value: zero, inclusive: false },
    maximum: { value: amountCryptoMax, inclusive: true }
  },
  cryptoScale,
  "A positive crypto amount as a decimal string with at most 6 decimals, e.g. \"16.216216\""
)

/** A NUMERIC(24,6) column that may hold zero (balances, frozen amounts, commissions). */
export const CryptoFromNumeric = decimalString(
  {
    label: "CryptoFromNumeric",
    allowNegative: false,
    integerDigitsMax: 18,
    scaleMax: cryptoScale,
    minimum: { value: zero, inclusive: true }
  },
  cryptoScale,
  "A non-negative crypto amount as a decimal string with at most 6 decimals"
)

/** A NUMERIC(24,6) column of any sign: ledger deltas, and the platform balance (SPEC §4). */
export const SignedCryptoFromNumeric = decimalString(
  { label: "SignedCryptoFromNumeric", allowNegative: true, integerDigitsMax: 18, scaleMax: cryptoScale },
  cryptoScale,
  "A crypto amount of any sign as a decimal string with at most 6 decimals"
)

/** An exchange rate (fiat per one crypto unit), NUMERIC(24,8): > 0, at most 8 decimals. */
export const Rate = decimalString(
  {
    label: "Rate",
    allowNegative: false,
    integerDigitsMax: 16,
    scaleMax: rateScale,
    minimum: { value: zero, inclusive: false }
  },
  rateScale,
  "A positive exchange rate as a decimal string with at most 8 decimals, e.g. \"92.5\""
)

/** A commission or reward percentage, NUMERIC(7,4): 0 ≤ p < 100, at most 4 decimals. */
export const Percent = decimalString(
  {
    label: "Percent",
    allowNegative: false,
    integerDigitsMax: 3,
    scaleMax: percentScale,
    minimum: { value: zero, inclusive: true },
    maximum: { value: hundred, inclusive: false }
  },
  percentScale,
  "A percentage 0 ≤ p < 100 as a decimal string with at most 4 decimals, e.g. \"2.5\""
)

/** Any NUMERIC column (any sign, any scale Postgres allows), e.g. aggregates; encodes at its own scale. */
export const DecimalFromNumeric = decimalString(
  {
    label: "DecimalFromNumeric",
    allowNegative: true,
    integerDigitsMax: postgresIntegerDigitsMax,
    scaleMax: postgresScaleMax
  },
  undefined,
  "A decimal string of any sign and scale, as Postgres returns NUMERIC"
)

// ---------------------------------------------------------------------------------------------
// Rounding and exact division

/** Rounds to `scale` decimals, ties to the even neighbour (SPEC §5.5). */
export const roundHalfEven = (value: BigDecimal.BigDecimal, scale: number): BigDecimal.BigDecimal =>
  BigDecimal.round(value, { scale, mode: "half-even" })

const pow10 = (exponent: number): bigint => 10n ** BigInt(exponent)

/**
 * Rounds `|numerator / denominator|` (both integers, denominator > 0) half-even to an integer.
 * Exact: the decision uses the integer remainder of the true quotient, so no intermediate
 * precision exists to be exceeded.
 */
const divideIntegersHalfEven = (numerator: bigint, denominator: bigint): bigint => {
  const quotient = numerator / denominator
  const twiceRemainder = 2n * (numerator % denominator)
  if (twiceRemainder < denominator) return quotient
  if (twiceRemainder > denominator) return quotient + 1n
  return quotient % 2n === 0n ? quotient : quotient + 1n
}

/**
 * `dividend / divisor` rounded half-even to `scale` decimals, exactly. `BigDecimal.divide`
 * stops at 100 significant digits, so rounding its result would round an approximation; here
 * the quotient is scaled to an integer ratio N/D with x/y · 10^scale = N/D and rounded from the
 * remainder of N/D. Throws on a zero divisor (callers pass schema-validated rates > 0).
 */
export const divideRoundHalfEven = (
  dividend: BigDecimal.BigDecimal,
  divisor: BigDecimal.BigDecimal,
  scale: number
): BigDecimal.BigDecimal => {
  if (divisor.value === 0n) throw new RangeError("division of money by zero")
  const exponent = divisor.scale - dividend.scale + scale
  const numerator = exponent >= 0 ? dividend.value * pow10(exponent) : dividend.value
  const denominator = exponent >= 0 ? divisor.value : divisor.value * pow10(-exponent)
  const negative = (numerator < 0n) !== (denominator < 0n)
  const magnitude = divideIntegersHalfEven(numerator < 0n ? -numerator : numerator, denominator < 0n ? -denominator : denominator)
  return BigDecimal.make(negative ? -magnitude : magnitude, scale)
}

// ---------------------------------------------------------------------------------------------
// Order amounts and ledger deltas (SPEC §5.5)

// Broken invariants are bugs, not business errors: fail loudly as a defect.
const assertMoney = (condition: boolean, message: string): void => {
  if (!condition) throw new Error(`Money invariant violated: ${message}`)
}

export interface OrderAmountsInput {
  readonly amountFiat: BigDecimal.BigDecimal
  /** Fiat per one crypto unit, fixed at assignment. */
  readonly rate: BigDecimal.BigDecimal
  readonly storeCommissionPct: BigDecimal.BigDecimal
  readonly traderRewardPct: BigDecimal.BigDecimal
}

export interface OrderAmounts {
  /** A */
  readonly amountCrypto: BigDecimal.BigDecimal
  /** s */
  readonly storeCommissionCrypto: BigDecimal.BigDecimal
  /** t */
  readonly traderRewardCrypto: BigDecimal.BigDecimal
}

const isPercent = (percent: BigDecimal.BigDecimal): boolean =>
  BigDecimal.greaterThanOrEqualTo(percent, zero) && BigDecimal.lessThan(percent, hundred)

const assertOrderAmountsInput = (input: OrderAmountsInput): void => {
  assertMoney(BigDecimal.isPositive(input.amountFiat), `amountFiat must be > 0, got ${formatPlain(input.amountFiat)}`)
  assertMoney(BigDecimal.isPositive(input.rate), `rate must be > 0, got ${formatPlain(input.rate)}`)
  assertMoney(isPercent(input.storeCommissionPct), `storeCommissionPct must be in [0, 100)`)
  assertMoney(isPercent(input.traderRewardPct), `traderRewardPct must be in [0, 100)`)
}

/** round6(amount × percent / 100); the product is exact, so only the final division rounds. */
const percentOfCrypto = (amountCrypto: BigDecimal.BigDecimal, percent: BigDecimal.BigDecimal): BigDecimal.BigDecimal =>
  divideRoundHalfEven(BigDecimal.multiply(amountCrypto, percent), hundred, cryptoScale)

/**
 * A = round6(amountFiat / rate), s = round6(A × storePct / 100), t = round6(A × traderPct / 100),
 * each rounded once, half-even, from the exact value (SPEC §5.5). s and t derive from the rounded
 * A because A is what the ledger moves. A may round to 0 for dust orders; callers decide.
 */
export const computeOrderAmounts = (input: OrderAmountsInput): OrderAmounts => {
  assertOrderAmountsInput(input)
  const amountCrypto = divideRoundHalfEven(input.amountFiat, input.rate, cryptoScale)
  const storeCommissionCrypto = percentOfCrypto(amountCrypto, input.storeCommissionPct)
  const traderRewardCrypto = percentOfCrypto(amountCrypto, input.traderRewardPct)
  assertMoney(BigDecimal.lessThanOrEqualTo(storeCommissionCrypto, amountCrypto), "store commission exceeds the amount")
  assertMoney(BigDecimal.lessThanOrEqualTo(traderRewardCrypto, amountCrypto), "trader reward exceeds the amount")
  return { amountCrypto, storeCommissionCrypto, traderRewardCrypto }
}

/** Balance changes of one completed order; they always sum to zero (double entry). */
export interface LedgerDeltas {
  readonly store: BigDecimal.BigDecimal
  readonly trader: BigDecimal.BigDecimal
  readonly platform: BigDecimal.BigDecimal
}

// PayIn: the customer paid the trader fiat; the trader's crypto goes to the store.
const payInCompletionDeltas = ({ amountCrypto, storeCommissionCrypto, traderRewardCrypto }: OrderAmounts): LedgerDeltas => ({
  store: BigDecimal.subtract(amountCrypto, storeCommissionCrypto),
  trader: BigDecimal.negate(BigDecimal.subtract(amountCrypto, traderRewardCrypto)),
  platform: BigDecimal.subtract(storeCommissionCrypto, traderRewardCrypto)
})

// PayOut: the trader paid the customer fiat; the store's crypto goes to the trader.
const payOutCompletionDeltas = ({ amountCrypto, storeCommissionCrypto, traderRewardCrypto }: OrderAmounts): LedgerDeltas => ({
  store: BigDecimal.negate(BigDecimal.sum(amountCrypto, storeCommissionCrypto)),
  trader: BigDecimal.sum(amountCrypto, traderRewardCrypto),
  platform: BigDecimal.subtract(storeCommissionCrypto, traderRewardCrypto)
})

/**
 * The deltas `BalanceManager` posts on completion (SPEC §5.5). The platform delta s − t may be
 * negative: the platform is the house and absorbs a reward larger than the commission.
 */
export const completionDeltas = (direction: Direction, amounts: OrderAmounts): LedgerDeltas => {
  const deltas = direction === "payin" ? payInCompletionDeltas(amounts) : payOutCompletionDeltas(amounts)
  const total = BigDecimal.sumAll([deltas.store, deltas.trader, deltas.platform])
  assertMoney(BigDecimal.isZero(total), `completion deltas sum to ${formatPlain(total)}, not 0`)
  return deltas
}

/** The balance frozen at assignment; it equals what completion later takes from that account. */
export interface Hold {
  readonly account: "trader" | "store"
  readonly amount: BigDecimal.BigDecimal
}

/** PayIn holds the trader's deposit for A − t; PayOut holds the store's balance for A + s. */
export const holdAmount = (direction: Direction, amounts: OrderAmounts): Hold =>
  direction === "payin"
    ? { account: "trader", amount: BigDecimal.subtract(amounts.amountCrypto, amounts.traderRewardCrypto) }
    : { account: "store", amount: BigDecimal.sum(amounts.amountCrypto, amounts.storeCommissionCrypto) }
