import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, type RunningServer } from "../../src/deploy/llama-server.js";
import { createEngine, type Engine, type LoadedModel } from "../../src/llm/engine.js";
import { createPromptFormatter } from "../../src/llm/prompt-format.js";
import { adapterWeightsId, servedAdapterName } from "../../src/llm/served-adapter.js";
import { RuntimeFailure } from "../../src/util/errors.js";
import { BUILD_TIMEOUT_MS, THREADS, hasStories, stories260K } from "../train/helpers.js";
import { startFaultProxy, type FaultProxy } from "./fault-proxy.js";
import { serveStoriesWithAdapters, type AgentAdapters, type ServedModel } from "./remote-server.js";

/**
 * The remote backend against a real llama-server (built by `autoact native build` from the
 * same llama.cpp source) serving stories260K with three adapters trained here; faults come
 * from a small proxy in front of it.
 */
let served: ServedModel;
let server: RunningServer;
let engine: Engine;
let vocab: LoadedModel;
let adapters: AgentAdapters;
let dir: string;
const fast = { retries: 2, backoffMs: 20, timeoutS: 30 };

beforeAll(async () => {
    if (!hasStories)
        return;
    served = await serveStoriesWithAdapters("remote");
    ({ server, adapters, dir } = served);
    engine = await createEngine({ gpu: "cpu", threads: THREADS });
    vocab = await engine.loadModel(stories260K, { vocabOnly: true });
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
    await served?.close();
    await engine?.dispose();
});

describe.skipIf(!hasStories)("remote backend on a real llama-server", () => {
    it("sends the local path's prompt tokens unchanged and the same sampling values", async () => {
        const proxy = await startFaultProxy(server.url);
        try {
            const generator = await vocab.createRemoteGenerator({ endpoints: [proxy.url], concurrency: 2, ...fast });
            expect(generator.backendName).toBe("openai");
            const formatter = createPromptFormatter(vocab.model, { template: "auto" });
            const prompt = formatter.formatPrompt("Question: where is the park?\nThought:");
            const result = await generator.complete({ prompt, maxTokens: 12, temperature: 0.7, topP: 0.9, topK: 20, seed: 5, stop: ["\n"] });
            expect(result.generatedTokens).toBeGreaterThan(0);
            const body = proxy.requests[0]!;
            // Byte-identical: the very token ids the local generator would decode (BOS included).
            expect(body.prompt).toEqual(prompt);
            expect(body).toMatchObject({ max_tokens: 12, temperature: 0.7, top_p: 0.9, top_k: 20, seed: 5, stop: ["\n"], min_p: 0, lora: [0, 1, 2].map((id) => ({ id, scale: 0 })) });
            await generator.dispose();
        } finally {
            await proxy.close();
        }
    });

    it("greedy output equals the local engine's on the same model and prompt", async () => {
        const local = await engine.loadModel(stories260K);
        const localGen = await local.createGenerator({ parallel: 2, contextSize: 512 });
        const remote = await vocab.createRemoteGenerator({ endpoints: [server.url], concurrency: 2, ...fast });
        const requests = ["Once upon a time", "The little dog"].map((prompt) => ({ prompt, maxTokens: 24 }));
        const [a, b] = [await localGen.generate(requests), await remote.generate(requests)];
        // The server keeps the first token's leading space; node-llama-cpp's detokenizer drops it.
        expect(b.map((r) => r.text.trimStart())).toEqual(a.map((r) => r.text));
        expect(b.map((r) => r.generatedTokens)).toEqual(a.map((r) => r.generatedTokens));
        await localGen.dispose();
        await remote.dispose();
        await local.dispose();
    });

    it("Ollama: the exact text on /api/generate, raw (no second chat template), with the local sampling, the context size and the JSON schema", async () => {
        const proxy = await startFaultProxy(server.url); // Ollama's route carried to the llama-server behind it
        try {
            const direct = await vocab.createRemoteGenerator({ endpoints: [server.url], concurrency: 1, ...fast });
            const ollama = await vocab.createRemoteGenerator({ endpoints: [proxy.url], server: "ollama", concurrency: 1, contextSize: 640, ...fast });
            const request = { prompt: "Once upon a time", maxTokens: 24, seed: 3, stop: ["\n\n"] };
            const [viaIds, viaText] = [await direct.complete(request), await ollama.complete(request)];
            expect(viaText.text).toBe(viaIds.text);
            expect(viaText.generatedTokens).toBe(viaIds.generatedTokens);
            expect(proxy.requests[0]).toEqual({
                model: stories260K, prompt: "Once upon a time", raw: true, stream: false, // the model llama-server lists
                options: { num_predict: 24, temperature: 0, top_p: 1, top_k: 0, min_p: 0, repeat_penalty: 1, num_ctx: 640, seed: 3, stop: ["\n\n"] }
            });
            const schema = { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"] };
            const json = await ollama.complete({ prompt: "Once upon a time", maxTokens: 60, temperature: 1, seed: 3, grammar: { jsonSchema: schema } });
            expect(proxy.requests[1]!.format).toEqual(schema);
            expect(typeof (JSON.parse(json.text) as { ok: unknown }).ok).toBe("boolean");
            await expect(ollama.complete({ prompt: "Once upon a time", maxTokens: 4, grammar: { gbnf: 'root ::= "yes"' } }))
                .rejects.toThrow(/\(ollama\) takes no GBNF grammar; use llama-server or vLLM/);
            const capped = await ollama.complete({ prompt: "Once upon a time", maxTokens: 3 });
            expect(capped.stopReason).toBe("maxTokens");
            await direct.dispose();
            await ollama.dispose();
        } finally {
            await proxy.close();
        }
    });

    it("per-request adapters (llama-server's lora field) change the output; the base stays the base", async () => {
        const request = { prompt: "Once upon a time", maxTokens: 16 };
        const outputs: Record<string, string> = {};
        for (const agent of ["base", "plan", "tool", "reflect"] as const) {
            const generator = await vocab.createRemoteGenerator({
                endpoints: [server.url], concurrency: 1, ...fast, adapters: agent === "base" ? [] : [{ filePath: adapters[agent] }]
            });
            outputs[agent] = (await generator.complete(request)).text;
            await generator.dispose();
        }
        expect(new Set(Object.values(outputs)).size).toBe(4);
        expect(outputs.plan).toContain("Search");
        const unknown = vocab.createRemoteGenerator({ endpoints: [server.url], ...fast, adapters: [{ filePath: path.join(dir, "other.gguf") }] });
        await expect(unknown).rejects.toThrow(/has no adapter other\.gguf loaded/);
        // another run's plan.gguf: the server's file is on this machine, and it is not this one
        const otherRun = path.join(dir, "other-run", "plan.gguf");
        fs.mkdirSync(path.dirname(otherRun), { recursive: true });
        fs.copyFileSync(adapters.tool, otherRun);
        await expect(vocab.createRemoteGenerator({ endpoints: [server.url], ...fast, adapters: [{ filePath: otherRun }] }))
            .rejects.toThrow(`remote model: ${server.url} serves ${adapters.plan}, not ${otherRun} (another run's plan.gguf): start llama-server with this run's adapters (autoact deploy)`);
        fs.copyFileSync(adapters.plan, otherRun); // the same adapter elsewhere is the same adapter
        const copy = await vocab.createRemoteGenerator({ endpoints: [server.url], concurrency: 1, ...fast, adapters: [{ filePath: otherRun }] });
        expect((await copy.complete(request)).text).toBe(outputs.plan);
        await copy.dispose();
        // a retrain under the running server: the same path, other weights (written and renamed,
        // as the trainer writes); the server reports the weights' id it read at load time
        const planId = await adapterWeightsId(adapters.plan);
        const toolId = await adapterWeightsId(adapters.tool);
        expect(planId).toMatch(/^autoact weights [0-9a-f]{16}$/);
        expect(toolId).not.toBe(planId);
        const original = path.join(dir, "plan-before.gguf");
        fs.copyFileSync(adapters.plan, original);
        fs.copyFileSync(adapters.tool, `${adapters.plan}.tmp`);
        fs.renameSync(`${adapters.plan}.tmp`, adapters.plan);
        try {
            await expect(vocab.createRemoteGenerator({ endpoints: [server.url], ...fast, adapters: [{ filePath: adapters.plan }] }))
                .rejects.toThrow(`remote model: ${server.url} loaded ${adapters.plan} before it was rewritten (it serves "${planId}", the file holds "${toolId}" now): restart llama-server`);
        } finally {
            fs.renameSync(original, adapters.plan);
        }
    });

    it("passes GBNF grammars and JSON schemas to llama-server", async () => {
        const generator = await vocab.createRemoteGenerator({ endpoints: [server.url], concurrency: 4, ...fast });
        const results = await generator.generate([1, 2, 3].map((seed) => ({
            prompt: "Once upon a time", maxTokens: 20, temperature: 1.5, seed, grammar: { gbnf: 'root ::= "answer: " ("yes" | "no") "."' }
        })));
        for (const r of results)
            expect(r.text).toMatch(/^answer: (yes|no)\.$/);
        const json = await generator.complete({
            prompt: "Once upon a time", maxTokens: 60, temperature: 1, seed: 3,
            grammar: { jsonSchema: { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"] } }
        });
        expect(typeof (JSON.parse(json.text) as { ok: unknown }).ok).toBe("boolean");
        await generator.dispose();
    });

    it("sends vLLM's grammar fields in the form its version takes (0.12 ignores guided_* without an error)", async () => {
        const proxy = await startFaultProxy(server.url); // llama-server behind it ignores the vLLM fields
        const grammar = { gbnf: 'root ::= "yes" | "no"' };
        const schema = { jsonSchema: { type: "object" } };
        const sent = async (version: string | undefined) => {
            proxy.answers = version == null ? {} : { "/version": { version } };
            proxy.requests.length = 0;
            const generator = await vocab.createRemoteGenerator({ endpoints: [proxy.url], server: "vllm", ...fast });
            await generator.complete({ prompt: "Once upon a time", maxTokens: 2, grammar });
            await generator.complete({ prompt: "Once upon a time", maxTokens: 2, grammar: schema });
            await generator.dispose();
            return proxy.requests.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => /^(structured_outputs|guided_)/.test(k))));
        };
        try {
            const recent = [{ structured_outputs: { grammar: grammar.gbnf } }, { structured_outputs: { json: schema.jsonSchema } }];
            expect(await sent("0.12.0")).toEqual(recent);
            expect(await sent("0.10.2")).toEqual(recent);
            expect(await sent(undefined)).toEqual(recent); // no /version: taken as recent
            expect(await sent("0.10.1.1")).toEqual([{ guided_grammar: grammar.gbnf }, { guided_json: schema.jsonSchema }]);
        } finally {
            await proxy.close();
        }
    });

    it("picks the base model the server lists (vLLM: the entry without a parent), and asks for model.served_name where several are listed", async () => {
        const proxy = await startFaultProxy(server.url); // lists what Ollama or vLLM would; llama-server behind answers
        const ollamaModels = { data: [{ id: "reflect" }, { id: "plan" }, { id: "qwen2.5:0.5b" }] };
        const sentModel = async (options: { server: "ollama" | "vllm"; servedName?: string; adapters?: { filePath: string }[] }) => {
            proxy.requests.length = 0;
            const generator = await vocab.createRemoteGenerator({ endpoints: [proxy.url], ...fast, ...options });
            await generator.complete({ prompt: "Once upon a time", maxTokens: 2 });
            await generator.dispose();
            return proxy.requests[0]!.model;
        };
        try {
            // Ollama lists every model it has, newest first: "reflect" would have answered base requests
            proxy.answers = { "/v1/models": ollamaModels };
            await expect(vocab.createRemoteGenerator({ endpoints: [proxy.url], server: "ollama", ...fast }))
                .rejects.toThrow(/\(ollama\) serves 3 models \(reflect, plan, qwen2\.5:0\.5b\): set model\.served_name to the one to use$/);
            expect(await sentModel({ server: "ollama", servedName: "qwen2.5:0.5b" })).toBe("qwen2.5:0.5b");
            // an adapter by its served name (name and hash): "plan" is any run's
            const plan = await servedAdapterName(adapters.plan);
            expect(plan).toMatch(/^plan-[0-9a-f]{12}$/);
            await expect(vocab.createRemoteGenerator({ endpoints: [proxy.url], server: "ollama", adapters: [{ filePath: adapters.plan }], ...fast }))
                .rejects.toThrow(`(ollama) serves no model ${plan}, the name of ${adapters.plan} (its hash): serve it as autoact deploy writes`);
            proxy.answers = { "/v1/models": { data: [...ollamaModels.data, { id: `${plan}:latest` }] } };
            expect(await sentModel({ server: "ollama", adapters: [{ filePath: adapters.plan }] })).toBe(plan);
            proxy.answers = { "/v1/models": { data: [{ id: plan, parent: "Qwen/Qwen2.5-0.5B" }, { id: "Qwen/Qwen2.5-0.5B", parent: null }] } };
            expect(await sentModel({ server: "vllm" })).toBe("Qwen/Qwen2.5-0.5B");
            expect(await sentModel({ server: "vllm", adapters: [{ filePath: adapters.plan }] })).toBe(plan);
        } finally {
            await proxy.close();
        }
    });

    describe("faults: retried, then one clear line", () => {
        let proxy: FaultProxy;
        beforeAll(async () => {
            proxy = await startFaultProxy(server?.url ?? "http://127.0.0.1:9");
        });
        afterAll(async () => await proxy?.close());
        const request = { prompt: "Once upon a time", maxTokens: 8 };

        it("a server that is down at start", async () => {
            const port = await freePort();
            const started = Date.now();
            const error = await vocab.createRemoteGenerator({ endpoints: [`http://127.0.0.1:${port}`], ...fast }).catch((e: unknown) => e);
            expect(error).toBeInstanceOf(RuntimeFailure);
            expect((error as Error).message).toBe(`remote model: http://127.0.0.1:${port} GET /v1/models: connection refused (is the server running?) (gave up after 3 tries)`);
            expect(Date.now() - started).toBeLessThan(5000);
        });

        it("a port that fetch refuses to use says so", async () => {
            // 6000 (X11) is on the Fetch standard's list of blocked ports
            const error = await vocab.createRemoteGenerator({ endpoints: ["http://127.0.0.1:6000"], ...fast, retries: 0 }).catch((e: unknown) => e);
            expect((error as Error).message).toBe("remote model: http://127.0.0.1:6000 GET /v1/models: fetch failed (bad port) (gave up after 1 try)");
        });

        it("500s, 429s, malformed JSON and dropped connections are retried; the reply is the server's", async () => {
            const generator = await vocab.createRemoteGenerator({ endpoints: [proxy.url], concurrency: 1, ...fast });
            proxy.plan = () => "forward";
            const clean = await generator.complete(request);
            for (const fault of ["500", "429", "malformed", "close"] as const) {
                proxy.plan = (n) => (n % 2 === 0 ? fault : "forward");
                proxy.requests.length = 0;
                const result = await generator.complete(request);
                expect(result.text, fault).toBe(clean.text);
                expect(proxy.requests, fault).toHaveLength(2);
            }
            proxy.plan = () => "500";
            await expect(generator.complete(request)).rejects.toThrow(/^remote model: http:\/\/127\.0\.0\.1:\d+ POST \/v1\/completions: HTTP 500: injected 500 \(gave up after 3 tries\)$/);
            // llama-server's 500 for a generation that is not UTF-8 repeats itself: one try, and why
            proxy.plan = () => "rejected-output";
            proxy.requests.length = 0;
            await expect(generator.complete(request)).rejects.toThrow(/HTTP 500: The model produced output that does not match the expected Content-only format \(llama-server rejects a generation that is not valid UTF-8; a seeded request does so again\)$/);
            expect(proxy.requests).toHaveLength(1);
            proxy.plan = () => "malformed";
            await expect(generator.complete(request)).rejects.toThrow(/POST \/v1\/completions: malformed JSON in the reply: .* \(gave up after 3 tries\)$/);
            await generator.dispose();
        });

        it("a reply slower than the timeout is retried, and gives up after the retries", async () => {
            const generator = await vocab.createRemoteGenerator({ endpoints: [proxy.url], concurrency: 1, ...fast, timeoutS: 0.5 });
            proxy.plan = (n) => (n === 0 ? { delayMs: 1500 } : "forward");
            proxy.requests.length = 0;
            const result = await generator.complete(request);
            expect(result.generatedTokens).toBeGreaterThan(0);
            proxy.plan = () => ({ delayMs: 1500 });
            await expect(generator.complete(request)).rejects.toThrow(/POST \/v1\/completions: no reply within the timeout \(gave up after 3 tries\)$/);
            await generator.dispose();
        });
    });
});
