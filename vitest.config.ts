import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    // Two-core machines: concurrency and stress tests must not compete with each other.
    fileParallelism: true,
    maxWorkers: 2,
    testTimeout: 30_000,
  },
});
