import { Schema } from "effect"
import { AmountFiat, Percent, Rate } from "../domain/Money.js"

/** Shared request field schemas: each failure message names what is wrong. */
export const Email = Schema.String.pipe(
  Schema.trimmed({ message: () => "email must not have surrounding spaces" }),
  Schema.maxLength(254, { message: () => "email is too long" }),
  Schema.pattern(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, { message: () => "email must be an email address" })
)
export const NewPassword = Schema.String.pipe(
  Schema.minLength(10, { message: () => "password must have at least 10 characters" }),
  Schema.maxLength(256, { message: () => "password is too long" })
)
export const Name = Schema.String.pipe(
  Schema.trimmed({ message: () => "name must not have surrounding spaces" }),
  Schema.minLength(1, { message: () => "name must not be empty" }),
  Schema.maxLength(128, { message: () => "name is too long" })
)
export const FiatCode = Schema.String.pipe(Schema.pattern(/^[A-Z]{3}$/, { message: () => "must be a 3-letter currency code" }))
export const CryptoCode = Schema.String.pipe(
  Schema.pattern(/^[A-Z0-9]{2,10}$/, { message: () => "must be a crypto currency code" })
)
export const ReferenceCode = Schema.String.pipe(
  Schema.pattern(/^[a-z0-9_]{2,32}$/, { message: () => "must be a known code (lowercase letters, digits, _)" })
)
export const HttpUrl = Schema.String.pipe(
  Schema.maxLength(2048, { message: () => "URL is too long" }),
  Schema.filter((value) => {
    try {
      const url = new URL(value)
      return (url.protocol === "https:" || url.protocol === "http:") && url.hostname.length > 0
        ? undefined
        : "must be an http(s) URL"
    } catch {
      return "must be a well-formed URL"
    }
  })
)
export const TtlSeconds = Schema.Int.pipe(
  Schema.between(60, 604_800, { message: () => "must be an integer number of seconds between 60 and 604800" })
)
export const PositiveCount = Schema.Int.pipe(
  Schema.between(1, 1_000_000, { message: () => "must be an integer between 1 and 1000000" })
)
export const Priority = Schema.Int.pipe(Schema.between(-1000, 1000, { message: () => "must be between -1000 and 1000" }))

export { AmountFiat, Percent, Rate }

/** Paging query parameters (strings in the URL), bounded so a listing can never be unbounded. */
export const pageLimit = (max: number) =>
  Schema.NumberFromString.pipe(
    Schema.compose(Schema.Int.pipe(Schema.between(1, max, { message: () => `limit must be an integer between 1 and ${max}` })))
  )
export const pageOffset = (max: number) =>
  Schema.NumberFromString.pipe(
    Schema.compose(Schema.Int.pipe(Schema.between(0, max, { message: () => `offset must be an integer between 0 and ${max}` })))
  )
