import { HttpApiMiddleware, HttpApiSecurity } from "@effect/platform"
import { Unauthorized } from "../domain/Errors.js"
import { CurrentStore, CurrentUser } from "../domain/Principal.js"

/** Bearer token of a logged-in user (admin, support, merchant, trader). */
export class Authentication extends HttpApiMiddleware.Tag<Authentication>()("Authentication", {
  failure: Unauthorized,
  provides: CurrentUser,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

/** A merchant's server: the store's API key in `X-API-Key`. */
export class StoreAuthentication extends HttpApiMiddleware.Tag<StoreAuthentication>()("StoreAuthentication", {
  failure: Unauthorized,
  provides: CurrentStore,
  security: { apiKey: HttpApiSecurity.apiKey({ in: "header", key: "X-API-Key" }) }
}) {}
