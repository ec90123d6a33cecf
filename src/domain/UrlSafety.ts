import { isIP } from "node:net"

const privateV4 = (address: string) => {
  const [a, b] = address.split(".").map(Number) as [number, number]
  return a === 10 || a === 127 || a === 0 || (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127) || a >= 224
}

const privateV6 = (address: string) => {
  const lower = address.toLowerCase()
  return lower === "::1" || lower === "::" || lower.startsWith("fc") || lower.startsWith("fd") || lower.startsWith("fe80") ||
    lower.startsWith("::ffff:")
}

/**
 * Callback targets must not point into our own network (SSRF): loopback, private, link-local and
 * metadata addresses, and local names, are refused unless ALLOW_PRIVATE_CALLBACK_URLS is set.
 * Names are re-checked after DNS resolution at delivery time.
 */
export const isPrivateHost = (hostname: string): boolean => {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase()
  if (host === "localhost" || host.endsWith(".localhost") || host.endsWith(".local") || host.endsWith(".internal")) return true
  const kind = isIP(host)
  if (kind === 4) return privateV4(host)
  if (kind === 6) return privateV6(host)
  return false
}
