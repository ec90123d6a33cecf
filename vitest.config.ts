import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Integration suites share one PostgreSQL server; files run in parallel on separate schemas/databases.
    fileParallelism: true,
    maxWorkers: 2,
    minWorkers: 1,
    testTimeout: 60_000,
    // Service logs are printed only for failing tests, where they help; passing ones stay quiet.
    silent: "passed-only",
    hookTimeout: 120_000,
    globalSetup: ["test/globalSetup.ts"]
  }
})
