import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { checkAdapterFitsBase, checkGgufFileSync, describeAdapter } from "../../src/llm/gguf-check.js";
import { InputError } from "../../src/util/errors.js";
import { packageRoot } from "../../src/util/package.js";
import { badModelEdits, badModelTensorEdits, hugeTensorCountHeader, rewriteGguf, writeAdapter } from "./gguf-fixtures.js";

const tinyModel = path.resolve(packageRoot, "../shared/models/stories260K.gguf");
const haveModel = fs.existsSync(tinyModel);
if (!haveModel)
    console.warn(`skipping GGUF hyperparameter checks: ${tinyModel} is absent`);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-gguf-check-"));

const errorOf = (fn: () => unknown): string => {
    try {
        fn();
    } catch (error) {
        expect(error).toBeInstanceOf(InputError);
        return (error as Error).message;
    }
    throw new Error("expected an InputError");
};

describe.skipIf(!haveModel)("the one GGUF check", () => {
    beforeAll(async () => {
        for (const [name, edit] of badModelEdits)
            await rewriteGguf(tinyModel, path.join(dir, `${name}.gguf`), edit, badModelTensorEdits[name]);
    });

    it("passes the real model", () => {
        expect(checkGgufFileSync(tinyModel).tensors).toHaveLength(48);
    });

    it("refuses every hyperparameter llama.cpp asserts on, with one line naming the file", () => {
        for (const [name, , pattern] of badModelEdits) {
            const message = errorOf(() => checkGgufFileSync(path.join(dir, `${name}.gguf`)));
            expect(message, name).toMatch(pattern);
            expect(message, name).toContain(`${name}.gguf`);
            expect(message.split("\n"), name).toHaveLength(1);
        }
    });

    it("refuses a header claiming 2^63 tensors at once, without reading further", () => {
        const file = path.join(dir, "huge-count.gguf");
        fs.writeFileSync(file, hugeTensorCountHeader());
        const before = process.memoryUsage().rss;
        const started = performance.now();
        expect(errorOf(() => checkGgufFileSync(file))).toMatch(/tensor count 9223372036854775808 .* cannot fit/);
        expect(performance.now() - started).toBeLessThan(1000);
        expect(process.memoryUsage().rss - before).toBeLessThan(64 << 20);
    });

    it("checks adapters on their own and against the base; describes a good one", async () => {
        const good = await writeAdapter(path.join(dir, "good-adapter.gguf"));
        checkGgufFileSync(good, "adapter");
        checkAdapterFitsBase(good, tinyModel);
        const text = describeAdapter(checkGgufFileSync(good))!;
        expect(text).toMatch(/agent: plan/);
        expect(text).toMatch(/rank: 4, alpha: 8/);
        expect(text).toMatch(/targets: attn_q/);
        expect(text).toMatch(/base: /);

        expect(errorOf(() => checkGgufFileSync(tinyModel, "adapter"))).toMatch(/not a LoRA adapter/);
        const noB = await writeAdapter(path.join(dir, "no-b.gguf"), { dropB: true });
        expect(errorOf(() => checkGgufFileSync(noB))).toMatch(/no lora_b partner/);
    });

    it("refuses an adapter whose shapes do not fit the base, or whose ranks disagree", async () => {
        const wrongShape = await writeAdapter(path.join(dir, "wrong-shape.gguf"), { inDim: 32 });
        expect(errorOf(() => checkAdapterFitsBase(wrongShape, tinyModel))).toMatch(/lora_a \[32, 4\] does not fit blk\.0\.attn_q\.weight \[64, 64\]/);
        const ranks = await writeAdapter(path.join(dir, "ranks.gguf"), { rankB: 2 });
        expect(errorOf(() => checkGgufFileSync(ranks))).toMatch(/has rank 2, the others 4|has rank 4, the others 2/);
    });
});
