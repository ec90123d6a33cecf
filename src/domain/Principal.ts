import { Context } from "effect"
import type { Role, StoreId, UserId } from "./Ids.js"

/** Who is calling: a logged-in user (bearer token) … */
export interface UserPrincipal {
  readonly userId: UserId
  readonly role: Role
  readonly sessionId: number
  /** The merchant or trader row owned by this user, when the role has one. */
  readonly merchantId: number | null
  readonly traderId: number | null
}
export class CurrentUser extends Context.Tag("CurrentUser")<CurrentUser, UserPrincipal>() {}

/** … or a merchant's server (store API key). */
export interface StorePrincipal {
  readonly storeId: StoreId
  readonly merchantId: number
  readonly publicId: string
}
export class CurrentStore extends Context.Tag("CurrentStore")<CurrentStore, StorePrincipal>() {}

/** The client's address as the HTTP layer resolved it (trusted proxies honoured). */
export class ClientIp extends Context.Tag("ClientIp")<ClientIp, string | null>() {}
