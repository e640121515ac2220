import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine, type Engine, type GenerationRequest, type Generator, type LoadedModel } from "../../src/llm/engine.js";
import { InputError } from "../../src/util/errors.js";
import { makeTinyModel, tempDir } from "./helpers.js";

let dir: string;
let engine: Engine;
let model: LoadedModel;
let generator: Generator;

beforeAll(async () => {
    dir = tempDir("request-check");
    engine = await createEngine({ gpu: "cpu", threads: 1 });
    model = await engine.loadModel(await makeTinyModel(dir, { vocab: 320 }));
    generator = await model.createGenerator({ contextSize: 64 });
});

afterAll(async () => {
    await engine?.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
});

describe("request values llama.cpp would take silently", () => {
    it("refuses bad sampling values and token ids with an InputError naming the value", async () => {
        const cases: [Partial<GenerationRequest>, RegExp][] = [
            [{ temperature: Number.NaN }, /invalid temperature NaN \(expected a finite number >= 0\)/],
            [{ temperature: Number.POSITIVE_INFINITY }, /invalid temperature Infinity/],
            [{ temperature: -1 }, /invalid temperature -1/],
            [{ temperature: 0.8, topP: Number.NaN }, /invalid topP NaN \(expected a number from 0 to 1\)/],
            [{ temperature: 0.8, topP: 1.5 }, /invalid topP 1\.5/],
            [{ temperature: 0.8, topK: 1.5 }, /invalid topK 1\.5 \(expected a whole number >= 0\)/],
            [{ temperature: 0.8, seed: 2 ** 32 }, /invalid seed 4294967296 \(expected a whole number from 0 to 4294967295\)/],
            [{ temperature: 0.8, seed: -1 }, /invalid seed -1/],
            [{ temperature: 0.8, seed: 1.5 }, /invalid seed 1\.5/],
            [{ prompt: [1, 2.5] }, /prompt has invalid token id 2\.5 at position 1 \(the vocabulary's ids are 0 to 319\)/],
            [{ prompt: [1, 320] }, /invalid token id 320 at position 1/],
            [{ prompt: [-5, 1] }, /invalid token id -5 at position 0/]
        ];
        for (const [values, pattern] of cases) {
            const error = await generator.complete({ prompt: "hello", maxTokens: 2, ...values }).catch((e: unknown) => e);
            expect(error, JSON.stringify(values)).toBeInstanceOf(InputError);
            expect((error as Error).message, JSON.stringify(values)).toMatch(pattern);
        }
        await expect(model.scoreTokens([1, 99999, 5])).rejects.toThrow(/tokens to score has invalid token id 99999 at position 1/);
    });

    it("takes the edges of each range", async () => {
        for (const values of [{ temperature: 0.8, seed: 2 ** 32 - 1 }, { temperature: 0.8, seed: 0, topK: 0, topP: 0 }, { temperature: 0.8, topP: 1 }, { prompt: [1, 319] }])
            expect((await generator.complete({ prompt: "hello", maxTokens: 2, ...values })).generatedTokens).toBeGreaterThanOrEqual(0);
    });
});
