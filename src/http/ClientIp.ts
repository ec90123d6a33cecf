import { HttpServerRequest } from "@effect/platform"
import { Effect, Option } from "effect"
import { AppConfig } from "../layers/Config.js"

const normalize = (address: string) => address.startsWith("::ffff:") ? address.slice("::ffff:".length) : address

/**
 * The socket's address; `X-Forwarded-For` is believed only when the socket is a configured trusted
 * proxy, and then the right-most address that is not itself a trusted proxy is the client.
 */
export const resolveClientIp = (
  remoteAddress: string | undefined,
  forwardedFor: string | undefined,
  trustedProxies: ReadonlyArray<string>
): string | null => {
  if (remoteAddress === undefined) return null
  const socketAddress = normalize(remoteAddress)
  if (!trustedProxies.includes(socketAddress) || forwardedFor === undefined) return socketAddress
  const hops = forwardedFor.split(",").map((hop) => normalize(hop.trim())).filter((hop) => hop.length > 0).slice(-32)
  for (let index = hops.length - 1; index >= 0; index--) {
    if (!trustedProxies.includes(hops[index]!)) return hops[index]!
  }
  return socketAddress
}

export const currentClientIp = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const config = yield* AppConfig
  return resolveClientIp(
    Option.getOrUndefined(request.remoteAddress),
    request.headers["x-forwarded-for"],
    config.trustedProxies
  )
})
