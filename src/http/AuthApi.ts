import { HttpApiEndpoint, HttpApiGroup } from "@effect/platform"
import { Schema } from "effect"
import { Unauthorized } from "../domain/Errors.js"
import { Role } from "../domain/Ids.js"
import { Authentication } from "./Security.js"

export const LoginRequest = Schema.Struct({
  email: Schema.String.pipe(Schema.maxLength(254, { message: () => "email is too long" })),
  password: Schema.String.pipe(Schema.maxLength(256, { message: () => "password is too long" }))
})
export const LoginResponse = Schema.Struct({
  token: Schema.String,
  role: Role,
  userId: Schema.Number,
  expiresAt: Schema.String
})

export class AuthApi extends HttpApiGroup.make("auth")
  .add(
    HttpApiEndpoint.post("login", "/api/auth/login").setPayload(LoginRequest).addSuccess(LoginResponse).addError(
      Unauthorized
    )
  )
  .add(
    HttpApiEndpoint.post("logout", "/api/auth/logout").addSuccess(Schema.Struct({ ok: Schema.Boolean })).middleware(
      Authentication
    )
  )
{}
