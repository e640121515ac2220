import { defineConfig } from "vitest/config";

// Model-heavy tests share 2 cores: run files one at a time so timings and
// thread counts stay honest, and give native builds room.
export default defineConfig({
    test: {
        root: new URL("..", import.meta.url).pathname,
        include: ["test/**/*.test.ts"],
        exclude: ["dist/**", "node_modules/**"],
        globalSetup: ["test/global-setup.ts"],
        fileParallelism: false,
        testTimeout: 120_000,
        hookTimeout: 600_000
    }
});
