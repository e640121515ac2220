import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { BUILD_TIMEOUT_MS, nativeBuild } from "./helpers.js";

describe("the CPU kernels of the trainer's patches: BF16 matmuls (input gradients, BF16 forward copies), the LoRA factors' F32 out_prod, the dropout masks' sine, the softmax's row maximum, RMS_NORM's sums, transposed copies, the frozen weights' copies in one step", () => {
    it("match a double-precision reference in whole and partial blocks on 1-3 threads (AMX tiles where the CPU has AMX-BF16, else tinyBLAS; out_prod's register blocks and ggml's loop; the sine in AVX2 vectors, else sinf; softmax rows whose maximum taken wrong would overflow; RMS_NORM and its backward; F32, F16 and BF16 transposed copies bit for bit; a frozen weight's copy made in one step, Q4_K, Q6_K, Q8_0, F16, BF16 or F32 (NaNs, infinities, subnormals and halfway cases among the F32 and F16 values) into BF16, F16 or F32, on a cache line (stored past the cache) or not, bit for bit as ggml's ops make it)", async () => {
        const { kernelCheck } = await nativeBuild();
        const result = await execa(kernelCheck, [], { reject: false });
        const cases = result.stdout.trim().split("\n").map((line) => JSON.parse(line) as { op: string; max_rel_error?: number; max_abs_error?: number; entries_wrong?: number; ok: boolean });
        expect(cases.filter((c) => c.op === "mul_mat_bf16")).toHaveLength(33);
        expect(cases.filter((c) => c.op === "out_prod_f32")).toHaveLength(16);
        expect(cases.filter((c) => c.op === "sin_f32")).toHaveLength(6);
        expect(cases.filter((c) => c.op === "soft_max_f32")).toHaveLength(10);
        expect(cases.filter((c) => c.op === "rms_norm_f32")).toHaveLength(8);
        for (const type of ["f32", "f16", "bf16"])
            expect(cases.filter((c) => c.op === `transpose_${type}`)).toHaveLength(12);
        expect(cases.filter((c) => c.op.startsWith("transposed_copy_"))).toHaveLength(132);
        expect(cases).toHaveLength(241);
        for (const c of cases)
            if (c.op.startsWith("transpose"))
                expect(c.entries_wrong, JSON.stringify(c)).toBe(0);
            else if (c.op === "sin_f32")
                expect(c.max_abs_error, JSON.stringify(c)).toBeLessThanOrEqual(2.5e-7);
            else if (c.op === "soft_max_f32")
                expect(c.max_abs_error, JSON.stringify(c)).toBeLessThanOrEqual(1e-6);
            else
                expect(c.max_rel_error, JSON.stringify(c)).toBeLessThanOrEqual(1e-5);
        expect(result.exitCode).toBe(0);

        const bad = await execa(kernelCheck, ["--threads", "2"], { reject: false });
        expect(bad.exitCode).toBe(2);
        expect(bad.stderr.trim()).toBe("autoact-kernel-check: unknown argument --threads (usage: autoact-kernel-check [--tolerance 1e-5])");
    }, BUILD_TIMEOUT_MS);
});
