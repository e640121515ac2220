import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine, type Engine, type Generator } from "../../src/llm/engine.js";
import { hasSharedModel, sharedModel } from "./helpers.js";

let engine: Engine;
let generator: Generator;

beforeAll(async () => {
    if (!hasSharedModel)
        return;
    engine = await createEngine({ gpu: "cpu", threads: 1 });
    const model = await engine.loadModel(sharedModel);
    generator = await model.createGenerator({ contextSize: 256 });
});

afterAll(async () => await engine?.dispose());

/** Every token limit from 1 to `upTo`, on a grammar that forces `text` (stories260K spells multi-byte characters in byte tokens). */
async function atEveryLimit(text: string, upTo: number, stop: string[] = []) {
    const gbnf = `root ::= ${JSON.stringify(text)}`;
    const results = [];
    for (let maxTokens = 1; maxTokens <= upTo; maxTokens++)
        results.push(await generator.complete({ prompt: "Once", maxTokens, grammar: { gbnf }, stop }));
    return results;
}

describe.skipIf(!hasSharedModel)("text of a generation cut off by maxTokens", () => {
    it("never ends in half a character", async () => {
        const text = "Hé said 日本語 😀 and ü.";
        const results = await atEveryLimit(text, 40);
        expect(results.at(-1)!.text).toBe(text);
        for (const result of results) {
            expect(text.startsWith(result.text), JSON.stringify(result.text)).toBe(true);
            expect(result.text).not.toContain("\uFFFD");
        }
    });

    it("never ends in the start of a stop string", async () => {
        const results = await atEveryLimit("Search[Lily]\nObservation 1: done", 24, ["\nObservation"]);
        expect(results.at(-1)).toMatchObject({ text: "Search[Lily]", stopReason: "stop" });
        for (const result of results)
            expect("Search[Lily]".startsWith(result.text), JSON.stringify(result.text)).toBe(true);
    });
});
