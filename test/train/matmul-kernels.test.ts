import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { BUILD_TIMEOUT_MS, nativeBuild } from "./helpers.js";

describe("the CPU's BF16 matmul kernels (the input gradients' and the BF16 forward copies')", () => {
    it("match a double-precision reference in whole and partial blocks on 1-3 threads (AMX tiles where the CPU has AMX-BF16, else tinyBLAS)", async () => {
        const { matmulCheck } = await nativeBuild();
        const result = await execa(matmulCheck, [], { reject: false });
        const cases = result.stdout.trim().split("\n").map((line) => JSON.parse(line) as { max_rel_error: number; ok: boolean });
        expect(cases).toHaveLength(33);
        for (const c of cases)
            expect(c.max_rel_error, JSON.stringify(c)).toBeLessThanOrEqual(1e-5);
        expect(result.exitCode).toBe(0);

        const bad = await execa(matmulCheck, ["--threads", "2"], { reject: false });
        expect(bad.exitCode).toBe(2);
        expect(bad.stderr.trim()).toBe("autoact-matmul-check: unknown argument --threads (usage: autoact-matmul-check [--tolerance 1e-5])");
    }, BUILD_TIMEOUT_MS);
});
