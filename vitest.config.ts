import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Integration suites share one PostgreSQL server; files run in parallel on separate schemas/databases.
    fileParallelism: true,
    maxWorkers: 2,
    minWorkers: 1,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: ["test/globalSetup.ts"]
  }
})
