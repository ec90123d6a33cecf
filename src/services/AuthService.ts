import { SqlClient, SqlSchema } from "@effect/sql"
import { DateTime, Duration, Effect, Option, Schema } from "effect"
import { Forbidden, Unauthorized } from "../domain/Errors.js"
import { Role, StoreId, UserId } from "../domain/Ids.js"
import type { StorePrincipal, UserPrincipal } from "../domain/Principal.js"
import { CurrentUser } from "../domain/Principal.js"
import { AppConfig } from "../layers/Config.js"
import { AuditLogger } from "./AuditLogger.js"
import { constantTimeEqual, randomToken, sha256, verifyAgainstDummy, verifyPassword } from "./Passwords.js"

const LoginRow = Schema.Struct({
  id: UserId,
  passwordHash: Schema.String,
  role: Role,
  isActive: Schema.Boolean
})

const SessionRow = Schema.Struct({
  sessionId: Schema.Number,
  userId: UserId,
  role: Role,
  merchantId: Schema.NullOr(Schema.Number),
  traderId: Schema.NullOr(Schema.Number)
})

const StoreKeyRow = Schema.Struct({
  id: StoreId,
  merchantId: Schema.Number,
  publicId: Schema.String,
  apiKeyHash: Schema.Uint8ArrayFromSelf
})

const invalidCredentials = new Unauthorized({ message: "invalid email or password" })
const invalidToken = new Unauthorized({ message: "missing, invalid or expired bearer token" })
const invalidApiKey = new Unauthorized({ message: "missing or invalid X-API-Key" })

/** API keys look like `jpk_<prefix>.<secret>`: the prefix finds the store, the secret is checked by hash. */
const API_KEY_PATTERN = /^jpk_([A-Za-z0-9_-]{12})\.([A-Za-z0-9_-]{43})$/

export const makeApiKey = () => {
  const prefix = randomToken(9)
  const secret = randomToken(32)
  return { apiKey: `jpk_${prefix}.${secret}`, prefix, hash: sha256(secret) }
}

export class AuthService extends Effect.Service<AuthService>()("AuthService", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AppConfig
    const audit = yield* AuditLogger

    const findLogin = SqlSchema.findOne({
      Request: Schema.String,
      Result: LoginRow,
      execute: (email) => sql`SELECT id, password_hash, role, is_active FROM users WHERE lower(email) = lower(${email})`
    })

    const login = Effect.fn("AuthService.login")(function*(email: string, password: string, ipAddress: string | null) {
      const user = yield* findLogin(email).pipe(Effect.orDie)
      const verified = Option.isSome(user)
        ? yield* verifyPassword(password, user.value.passwordHash)
        : yield* verifyAgainstDummy(password)
      if (Option.isNone(user) || !verified || !user.value.isActive) {
        yield* audit.logAction({ action: "auth.login_failed", details: { email }, ipAddress })
        return yield* invalidCredentials
      }
      const token = randomToken()
      const expiresAt = DateTime.addDuration(yield* DateTime.now, config.sessionTtl)
      yield* sql`INSERT INTO sessions ${
        sql.insert({
          userId: user.value.id,
          tokenHash: sha256(token),
          expiresAt: DateTime.toDate(expiresAt),
          ipAddress
        })
      }`.pipe(Effect.orDie)
      yield* audit.logAction({
        action: "auth.login",
        userId: user.value.id,
        userRole: user.value.role,
        targetEntity: "user",
        targetId: user.value.id,
        ipAddress
      })
      return { token, role: user.value.role, userId: user.value.id, expiresAt: DateTime.formatIso(expiresAt) }
    })

    const findSession = SqlSchema.findOne({
      Request: Schema.Uint8ArrayFromSelf,
      Result: SessionRow,
      execute: (tokenHash) =>
        sql`SELECT s.id AS session_id, u.id AS user_id, u.role, m.id AS merchant_id, t.id AS trader_id
            FROM sessions s
            JOIN users u ON u.id = s.user_id
            LEFT JOIN merchants m ON m.user_id = u.id
            LEFT JOIN traders t ON t.user_id = u.id
            WHERE s.token_hash = ${tokenHash} AND s.revoked_at IS NULL AND s.expires_at > now() AND u.is_active`
    })

    /** The token's hash is the lookup key: an equality match on a 256-bit digest leaks nothing useful by timing. */
    const authenticate = Effect.fn("AuthService.authenticate")(function*(token: string) {
      if (token.length === 0 || token.length > 256) return yield* invalidToken
      const session = yield* findSession(sha256(token)).pipe(Effect.orDie)
      if (Option.isNone(session)) return yield* invalidToken
      const principal: UserPrincipal = session.value
      return principal
    })

    const logout = Effect.fn("AuthService.logout")(function*(principal: UserPrincipal, ipAddress: string | null) {
      yield* sql`UPDATE sessions SET revoked_at = now() WHERE id = ${principal.sessionId} AND revoked_at IS NULL`.pipe(
        Effect.orDie
      )
      yield* audit.logAction({
        action: "auth.logout",
        userId: principal.userId,
        userRole: principal.role,
        targetEntity: "session",
        targetId: principal.sessionId,
        ipAddress
      })
    })

    const findStoreKey = SqlSchema.findOne({
      Request: Schema.String,
      Result: StoreKeyRow,
      execute: (prefix) =>
        sql`SELECT s.id, s.merchant_id, s.public_id, s.api_key_hash
            FROM merchant_stores s JOIN merchants m ON m.id = s.merchant_id JOIN users u ON u.id = m.user_id
            WHERE s.api_key_prefix = ${prefix} AND s.is_active AND u.is_active`
    })

    const authenticateStore = Effect.fn("AuthService.authenticateStore")(function*(apiKey: string) {
      const match = API_KEY_PATTERN.exec(apiKey)
      if (match === null) return yield* invalidApiKey
      const store = yield* findStoreKey(match[1]!).pipe(Effect.orDie)
      if (Option.isNone(store) || !constantTimeEqual(sha256(match[2]!), store.value.apiKeyHash)) {
        return yield* invalidApiKey
      }
      const principal: StorePrincipal = {
        storeId: store.value.id,
        merchantId: store.value.merchantId,
        publicId: store.value.publicId
      }
      return principal
    })

    return { login, logout, authenticate, authenticateStore } as const
  }),
  dependencies: [AuditLogger.Default]
}) {}

/** Role check for handlers: anyone else gets a 403 that names the roles allowed. */
export const requireRole = (...roles: ReadonlyArray<Role>) =>
  Effect.flatMap(CurrentUser, (user) =>
    roles.includes(user.role)
      ? Effect.succeed(user)
      : Effect.fail(new Forbidden({ message: `this action needs the role ${roles.join(" or ")}` })))

export const sessionTtlSeconds = (ttl: Duration.Duration) => Math.floor(Duration.toSeconds(ttl))
