import { Redis } from "ioredis"
import pg from "pg"
import { adminDatabaseUrl, testRedisUrl } from "./support/env.js"

/**
 * The suites prove behaviour on real PostgreSQL and Redis. When either is unreachable the whole run
 * fails here, loudly, instead of skipping: a skipped integration test proves nothing.
 */
export default async function checkServices() {
  const client = new pg.Client({ connectionString: adminDatabaseUrl, connectionTimeoutMillis: 5000 })
  try {
    await client.connect()
    await client.query("SELECT 1")
  } catch (error) {
    throw new Error(`PostgreSQL is unreachable at ${adminDatabaseUrl}: ${String(error)}. Start it (see README) and rerun.`)
  } finally {
    await client.end().catch(() => undefined)
  }
  const redis = new Redis(testRedisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3000 })
  try {
    await redis.connect()
    await redis.ping()
  } catch (error) {
    throw new Error(`Redis is unreachable at ${testRedisUrl}: ${String(error)}. Start it (see README) and rerun.`)
  } finally {
    redis.disconnect()
  }
}
