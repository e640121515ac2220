import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine, type Generator } from "../../src/llm/engine.js";
import { packageRoot } from "../../src/util/package.js";
import { makeTinyModel, tempDir } from "./helpers.js";

let dir: string;
let modelPath: string;

beforeAll(async () => {
    dir = tempDir("dispose");
    modelPath = await makeTinyModel(dir);
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Long requests: more than the generator can finish before the test disposes it. */
const long = { prompt: "once upon a time", maxTokens: 400, ignoreEos: true };

/** Waits until the generator has produced tokens, i.e. requests are running on its slots. */
async function untilGenerating(generator: Generator): Promise<void> {
    while (generator.stats.generatedTokens === 0)
        await new Promise<void>((resolve) => setImmediate(resolve));
}

/** How a request settles: "rejected: <message>" or "resolved". */
function outcome(request: Promise<unknown>): Promise<string> {
    return request.then(() => "resolved", (e: Error) => `rejected: ${e.message}`);
}

/** The outcomes, "pending" for those not settled within `ms`. */
function within(outcomes: Promise<string>[], ms: number): Promise<string[]> {
    const timeout = new Promise<string>((resolve) => setTimeout(() => resolve("pending"), ms).unref());
    return Promise.all(outcomes.map((o) => Promise.race([o, timeout])));
}

describe("disposing under running requests", () => {
    for (const helper of [true, false]) {
        it(`generator.dispose() fails the running and the queued requests at once (helper ${helper ? "on" : "off"})`, async () => {
            const engine = await createEngine({ gpu: "cpu", threads: 1, helper });
            try {
                const model = await engine.loadModel(modelPath);
                const generator = await model.createGenerator({ parallel: 2, contextSize: 512 });
                const requests = [0, 1, 2].map(() => outcome(generator.complete(long)));
                await untilGenerating(generator);
                await within([generator.dispose().then(() => "disposed")], 2000);
                expect(await within(requests, 2000)).toEqual([
                    "rejected: generator disposed",
                    "rejected: generator disposed",
                    "rejected: generator disposed before the request ran"
                ]);
                await expect(generator.complete(long)).rejects.toThrow("generator disposed");
            } finally {
                await engine.dispose();
            }
        });
    }

    it("disposing the model, the engine or node-llama-cpp's model under a running generator fails its requests, no crash", () => {
        const engineModule = pathToFileURL(path.join(packageRoot, "dist/src/llm/engine.js")).href;
        const script = path.join(dir, "dispose-under.mjs");
        fs.writeFileSync(script, `
            import { createEngine } from ${JSON.stringify(engineModule)};
            const long = ${JSON.stringify(long)};
            for (const what of ["model", "engine", "llama-model"]) {
                for (const helper of [true, false]) {
                    const engine = await createEngine({ gpu: "cpu", threads: 1, helper });
                    const model = await engine.loadModel(${JSON.stringify(modelPath)});
                    const generator = await model.createGenerator({ parallel: 2, contextSize: 512 });
                    const requests = [0, 1, 2].map(() => generator.complete(long).then(() => "resolved", (e) => "rejected: " + e.message));
                    while (generator.stats.generatedTokens === 0)
                        await new Promise((resolve) => setImmediate(resolve));
                    await (what === "model" ? model.dispose() : what === "engine" ? engine.dispose() : model.model.dispose());
                    const timeout = new Promise((resolve) => setTimeout(() => resolve("pending"), 2000).unref());
                    console.log(what, helper, JSON.stringify(await Promise.all(requests.map((r) => Promise.race([r, timeout])))));
                    await generator.dispose();
                    await engine.dispose();
                }
            }
        `);
        const child = spawnSync(process.execPath, [script], { encoding: "utf8", timeout: 60_000 });
        expect(child.signal).toBeNull();
        expect(child.stderr).toBe("");
        expect(child.status).toBe(0);
        const lines = child.stdout.trim().split("\n");
        expect(lines).toHaveLength(6);
        for (const line of lines) {
            const outcomes = JSON.parse(line.slice(line.indexOf("[")) as string) as string[];
            expect(outcomes.every((o) => o.startsWith("rejected: ")), line).toBe(true);
        }
        // LoadedModel.dispose disposes its generators first: their own message
        expect(lines[0]).toContain("rejected: generator disposed");
    });
});
