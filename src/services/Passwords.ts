import { Effect } from "effect"
import { createHash, randomBytes, scrypt, timingSafeEqual } from "node:crypto"

/** scrypt parameters (N=2^15, r=8, p=1): about 30 ms and 32 MiB per hash on this class of machine. */
const SCRYPT_COST = 32768
const SCRYPT_BLOCK_SIZE = 8
const SCRYPT_PARALLELISM = 1
const KEY_LENGTH_BYTES = 32
const SCRYPT_MAX_MEMORY_BYTES = 64 * 1024 * 1024

const derive = (password: string, salt: Buffer, cost: number, blockSize: number, parallelism: number) =>
  Effect.async<Buffer, Error>((resume) => {
    scrypt(
      password.normalize("NFKC"),
      salt,
      KEY_LENGTH_BYTES,
      { N: cost, r: blockSize, p: parallelism, maxmem: SCRYPT_MAX_MEMORY_BYTES },
      (error, key) => resume(error ? Effect.fail(error) : Effect.succeed(key))
    )
  }).pipe(Effect.orDie)

/** `scrypt$N$r$p$salt$hash`, both base64: the parameters travel with the hash so they can be raised later. */
export const hashPassword = (password: string) =>
  Effect.gen(function*() {
    const salt = randomBytes(16)
    const key = yield* derive(password, salt, SCRYPT_COST, SCRYPT_BLOCK_SIZE, SCRYPT_PARALLELISM)
    return ["scrypt", SCRYPT_COST, SCRYPT_BLOCK_SIZE, SCRYPT_PARALLELISM, salt.toString("base64"), key.toString("base64")]
      .join("$")
  })

export const verifyPassword = (password: string, stored: string) =>
  Effect.gen(function*() {
    const [scheme, cost, blockSize, parallelism, salt, hash] = stored.split("$")
    if (scheme !== "scrypt" || salt === undefined || hash === undefined) return false
    const expected = Buffer.from(hash, "base64")
    const actual = yield* derive(password, Buffer.from(salt, "base64"), Number(cost), Number(blockSize), Number(parallelism))
    return expected.length === actual.length && timingSafeEqual(expected, actual)
  })

/** Burns the same time as a real check, so an unknown email answers as slowly as a wrong password. */
const dummyHash = Effect.runSync(Effect.cached(hashPassword("jivapay-timing-equalizer")))
export const verifyAgainstDummy = (password: string) =>
  Effect.flatMap(dummyHash, (stored) => verifyPassword(password, stored)).pipe(Effect.as(false))

/** Random opaque secrets (session tokens, API keys): 32 bytes, base64url. */
export const randomToken = (bytes = 32) => randomBytes(bytes).toString("base64url")

export const sha256 = (value: string) => createHash("sha256").update(value, "utf8").digest()

export const constantTimeEqual = (left: Uint8Array, right: Uint8Array) =>
  left.length === right.length && timingSafeEqual(left, right)
