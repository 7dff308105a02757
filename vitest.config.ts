import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Every test makes its own database and queue names, so files run in parallel;
    // two workers keep a 2-core machine responsive.
    maxWorkers: 2,
  },
});
