import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelSession } from "../../src/pipeline/model-session.js";
import { defaultConfig } from "../../src/pipeline/config-schema.js";
import { InputError } from "../../src/util/errors.js";
import { makeTinyModel, tempDir, writeLoraAdapter } from "../llm/helpers.js";

let dir: string;
let modelPath: string;

beforeAll(async () => {
    dir = tempDir("session");
    modelPath = await makeTinyModel(dir);
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("model session", () => {
    it("a generator that failed to be made is not kept, and dispose still frees the model and engine, twice over", async () => {
        const session = new ModelSession(modelPath, { ...defaultConfig.model, gpu: "cpu", threads: 1, parallel: 1, context_size: 128 });
        const base = await session.generator();
        expect((await base.complete({ prompt: "hello", maxTokens: 2 })).tokens.length).toBeGreaterThan(0);
        const adapter = path.join(dir, "later.gguf");
        await expect(session.generator([{ filePath: adapter }])).rejects.toThrow(InputError);
        // the file appears: the next call makes the generator instead of repeating the old failure
        await writeLoraAdapter({ out: adapter, nEmbd: 64, layers: 2, bStd: 0 });
        const adapted = await session.generator([{ filePath: adapter }]);
        expect((await adapted.complete({ prompt: "hello", maxTokens: 2 })).tokens.length).toBeGreaterThan(0);
        // a failure left in flight at dispose time does not stop it either
        const failing = session.generator([{ filePath: path.join(dir, "never.gguf") }]);
        failing.catch(() => undefined);

        const model = await session.loaded();
        await session.dispose();
        await expect(failing).rejects.toThrow(InputError);
        expect(model.model.disposed).toBe(true);
        expect(model.llama.disposed).toBe(true);
        await expect(base.complete({ prompt: "hello", maxTokens: 2 })).rejects.toThrow("generator disposed");
        await session.dispose();
    });
});
