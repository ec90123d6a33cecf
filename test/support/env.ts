/** Where the integration suites find the real services; CI and the machine provide both. */
export const adminDatabaseUrl = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
export const testRedisUrl = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379"

/** The database URL for another database on the same server. */
export const databaseUrlFor = (database: string) => {
  const url = new URL(adminDatabaseUrl)
  url.pathname = `/${database}`
  return url.toString()
}
