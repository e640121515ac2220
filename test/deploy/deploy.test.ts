import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeDeployment } from "../../src/deploy/deploy.js";
import { describeEnding } from "../../src/deploy/agent.js";
import type { EpisodeResult } from "../../src/agents/episode.js";
import { freePort } from "../../src/deploy/llama-server.js";
import { runPipeline } from "../../src/pipeline/runner.js";
import { createProgress } from "../../src/util/progress.js";
import { packageRoot } from "../../src/util/package.js";
import { runCliProcess } from "../helpers/cli.js";
import { startFaultProxy } from "../llm/fault-proxy.js";
import { trainStoriesAdapters } from "../llm/remote-server.js";
import { BUILD_TIMEOUT_MS, nativeBuild, stories260K, tempDir } from "../train/helpers.js";

const haveShared = fs.existsSync(stories260K) && fs.existsSync(path.resolve(packageRoot, "../shared/datasets/hotpotqa/easy.jsonl"));
if (!haveShared)
    console.warn("skipping deploy tests: stories260K or the shared datasets are absent");

let dir: string;
let runDir: string;

/** A run directory as the pipeline leaves it (config, tools, corpus, manifest) with trained adapters. */
beforeAll(async () => {
    if (!haveShared)
        return;
    dir = tempDir("deploy");
    runDir = path.join(dir, "run");
    await runPipeline({
        configFile: path.join(packageRoot, "pipelines", "hotpotqa.yaml"), model: stories260K, runDir, limit: 1, until: "select-tools",
        dataDirs: [path.resolve(packageRoot, "../shared/datasets/hotpotqa")],
        set: ["data.corpus=[]", "model.context_size=1024", "model.parallel=2", "instruct.max_tokens=32", "eval.max_steps=2", "eval.max_tokens=16"],
        progress: createProgress({ silent: true }), log: () => {}
    });
    // gently trained: llama-server answers 500 to generations that are not valid UTF-8 (see remote-server.ts)
    const adapters = await trainStoriesAdapters(dir, { lr: 1e-3 });
    fs.mkdirSync(path.join(runDir, "adapters"), { recursive: true });
    for (const [agent, file] of Object.entries(adapters))
        fs.copyFileSync(file, path.join(runDir, "adapters", `${agent}.gguf`));
}, BUILD_TIMEOUT_MS);

afterAll(() => {
    if (dir != null)
        fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * `autoact agent`'s outcome: an answer is one line on stdout (status 0); no answer is nothing on
 * stdout and status 1; either way stderr's last line says why the episode ended.
 */
function expectAnswerOrNone(run: { code: number | null; stdout: string; stderr: string }): void {
    const ending = run.stderr.trim().split("\n").at(-1)!;
    expect(ending).toMatch(/^(answered in \d+ steps?|stopped after \d+ steps?[,:] .*(answer|Reflect))$/);
    if (ending.endsWith(": no answer")) {
        expect(run.code, run.stderr).toBe(1);
        expect(run.stdout).toBe("");
    } else {
        expect(run.code, run.stderr).toBe(0);
        expect(run.stdout).toMatch(/^[^\n]*\n$/);
    }
}

describe.skipIf(!haveShared)("autoact deploy and autoact agent", () => {
    it("deploy writes a llama-server command that starts with the three adapters, and Modelfiles; agent --server answers through it", { timeout: 300_000 }, async () => {
        const port = await freePort();
        const { llamaServer } = await nativeBuild();
        const deployment = await writeDeployment({ runDir, port, llamaServer });
        expect(deployment.command.slice(0, 3)).toEqual([llamaServer, "--model", stories260K]);
        // llama-server loads them under their content names (plan-<sha256[:12]>.gguf), at scale 0
        expect(deployment.command[deployment.command.indexOf("--lora-scaled") + 1]!.split(",").map((item) => path.basename(item)))
            .toEqual(Object.values(deployment.servedNames).map((name) => `${name}.gguf:0`));
        // Ollama runs llama on its llama.cpp runner, which loads adapters: no warning
        expect(deployment.ollamaWarning).toBeUndefined();
        for (const agent of ["plan", "tool", "reflect"]) {
            const modelfile = fs.readFileSync(deployment.modelfiles[agent as "plan"], "utf8");
            expect(modelfile).toContain(`FROM ${stories260K}`);
            expect(modelfile).toContain(`ADAPTER ${path.join(runDir, "adapters", `${agent}.gguf`)}`);
            // the run's context per request, as each llama-server slot has (Ollama's default is 2048)
            const [, slots, total] = /--parallel (\d+) --ctx-size (\d+)/.exec(deployment.command.join(" "))!;
            expect(modelfile).toContain(`PARAMETER num_ctx ${Number(total) / Number(slots)}\n`);
            expect(modelfile).toContain("PARAMETER repeat_penalty 1\n");
        }
        // vLLM: a PEFT folder per sub-agent (test/deploy/peft.test.ts checks them against transformers + PEFT)
        if (!("command" in deployment.vllm))
            throw new Error(`no vLLM deployment: ${deployment.vllm.skipped}`);
        const peftDirs = Object.values(deployment.vllm.peft);
        // served under the adapter's name and hash, as the remote backend asks: two runs deployed to one server stay apart
        const servedNames = Object.values(deployment.servedNames);
        expect(servedNames.map((name) => name.replace(/-[0-9a-f]{12}$/, ""))).toEqual(["plan", "tool", "reflect"]);
        expect(deployment.vllm.command.slice(deployment.vllm.command.indexOf("--lora-modules") + 1)).toEqual(servedNames.map((name, i) => `${name}=${peftDirs[i]}`));
        expect(fs.readFileSync(deployment.readme, "utf8")).toContain(`ollama create ${servedNames[0]} -f ${deployment.modelfiles.plan}\n`);
        for (const folder of peftDirs)
            expect(fs.readdirSync(folder).sort()).toEqual(["adapter_config.json", "adapter_model.safetensors"]);
        expect(fs.readFileSync(deployment.readme, "utf8")).toContain(`vllm serve HF_MODEL --enable-lora --max-loras 3 --max-lora-rank 8`);
        await expect(writeDeployment({ runDir, port: 0, out: path.join(dir, "port0") })).rejects.toThrow("--port must be a whole number from 1 to 65535, got 0");
        await expect(writeDeployment({ runDir, parallel: -2, out: path.join(dir, "parallel") })).rejects.toThrow("--parallel must be a whole number from 1 to 4096, got -2");
        const named = await writeDeployment({ runDir, out: path.join(dir, "named"), hfModel: "karpathy/tinyllamas" });
        expect("command" in named.vllm ? named.vllm.command.slice(0, 4) : named.vllm).toEqual(["vllm", "serve", "karpathy/tinyllamas", "--enable-lora"]);
        const namedConfig = JSON.parse(fs.readFileSync(path.join(dir, "named", "peft", "plan", "adapter_config.json"), "utf8"));
        expect(namedConfig.base_model_name_or_path).toBe("karpathy/tinyllamas");
        // the script names the adapters beside itself, but where the folder's path has a comma
        // (llama-server splits its list there): the written path, quoted for llama-server
        expect(fs.readFileSync(deployment.script, "utf8")).toContain(`--lora-scaled "$here/adapters/${deployment.servedNames.plan}.gguf:0,`);
        const comma = await writeDeployment({ runDir, out: path.join(dir, "a,b"), port, llamaServer });
        const commaScript = fs.readFileSync(comma.script, "utf8");
        expect(commaScript).not.toContain("$here/adapters");
        expect(commaScript).toContain(`'"${path.join(dir, "a,b", "adapters", deployment.servedNames.plan)}.gguf:0",`);
        // The script as written, with one slot thread (tests share 2 cores), from the run directory
        // moved elsewhere: it finds the adapters beside itself.
        const moved = `${runDir}-moved`;
        fs.renameSync(runDir, moved);
        const server = spawn(path.join(moved, path.relative(runDir, deployment.script)), ["--threads", "1"], { stdio: "ignore" });
        try {
            const url = `http://127.0.0.1:${port}`;
            for (let i = 0; i < 300 && !(await fetch(`${url}/health`).then((r) => r.ok, () => false)); i++)
                await new Promise((resolve) => setTimeout(resolve, 200));
            fs.renameSync(moved, runDir);
            const loaded = await (await fetch(`${url}/lora-adapters`)).json() as { id: number; path: string }[];
            expect(loaded.map((a) => path.basename(a.path))).toEqual(Object.values(deployment.servedNames).map((name) => `${name}.gguf`));
            // a request that names no adapter (curl, another client) gets the base model, not the three summed
            const firstTokenLogprob = async (lora?: { id: number; scale: number }[]) => {
                const reply = await (await fetch(`${url}/completion`, { method: "POST", body: JSON.stringify({ prompt: "Once upon a time", n_predict: 1, n_probs: 1, temperature: 0, ...(lora ? { lora } : {}) }) })).json() as
                    { completion_probabilities: { logprob: number }[] };
                return reply.completion_probabilities[0]!.logprob;
            };
            const baseLogprob = await firstTokenLogprob([0, 1, 2].map((id) => ({ id, scale: 0 })));
            // (batches of other shapes move the last digits: the adapters move more)
            expect(Math.abs(await firstTokenLogprob() - baseLogprob)).toBeLessThan(1e-5);
            expect(Math.abs(await firstTokenLogprob([0, 1, 2].map((id) => ({ id, scale: 1 }))) - baseLogprob)).toBeGreaterThan(1e-5);

            const proxy = await startFaultProxy(url);
            try {
                const answered = await runCliProcess(["agent", "--run-dir", runDir, "--server", proxy.url, "Where did Arno Schmidt work?"]);
                expectAnswerOrNone(answered);
                expect(answered.stderr).toMatch(/^1\. /m);
                // Group planning: the plan agent's adapter was asked for on the server.
                const scales = proxy.requests.map((r) => JSON.stringify((r.lora as { scale: number }[]).map((l) => l.scale)));
                expect(scales).toContain("[1,0,0]");
            } finally {
                await proxy.close();
            }
            // A retrain since the server started: the run's plan.gguf is other weights now, which the
            // server does not serve; refused, not answered with the old ones.
            const plan = path.join(runDir, "adapters", "plan.gguf");
            const saved = fs.readFileSync(plan);
            fs.copyFileSync(path.join(runDir, "adapters", "tool.gguf"), `${plan}.new`);
            fs.renameSync(`${plan}.new`, plan);
            try {
                const stale = await runCliProcess(["agent", "--run-dir", runDir, "--server", url, "Where did Arno Schmidt work?"]);
                expect(stale.code).toBe(2);
                expect(stale.stderr.trim()).toMatch(new RegExp(`serves ${deployment.servedNames.plan}\\.gguf, not plan-[0-9a-f]{12}\\.gguf .*restart it with this run's deploy script`));
            } finally {
                fs.writeFileSync(plan, saved);
            }
        } finally {
            server.kill("SIGKILL");
            if (fs.existsSync(moved))
                fs.renameSync(moved, runDir);
        }

        const local = await runCliProcess(["agent", "--run-dir", runDir, "--model", stories260K, "Where did Arno Schmidt work?"]);
        expectAnswerOrNone(local);
        expect(local.stderr).toMatch(/^1\. /m);
        const bad = await runCliProcess(["deploy", "--run-dir", dir]);
        expect(bad.code).toBe(2);
        expect(bad.stderr.trim()).toBe(`autoact: ${dir} is not a run directory (no config.yaml): run a pipeline there first (autoact run PIPELINE.yaml --run-dir ${dir})`);
    });
});

describe.skipIf(!haveShared)("autoact deploy without adapters", () => {
    it("says whether the train stage is still to run or had nothing to train on", async () => {
        const bare = tempDir("deploy-bare");
        try {
            fs.writeFileSync(path.join(bare, "config.yaml"), `name: bare\nmodel:\n  path: ${stories260K}\n`);
            const now = new Date().toISOString();
            const stage = (stats: Record<string, number>) => ({ status: "done", inputHash: "x", outputs: {}, startedAt: now, stats });
            const manifest = (stages: Record<string, unknown>) => fs.writeFileSync(path.join(bare, "manifest.json"), JSON.stringify({
                version: 1, pipeline: "bare", createdAt: now, updatedAt: now, model: { source: stories260K, path: stories260K, sha256: "x", bytes: 1 }, stages
            }));
            manifest({ filter: stage({ trajectories: 7, kept: 0 }) });
            await expect(writeDeployment({ runDir: bare })).rejects.toThrow(`${path.join(bare, "adapters")}: no adapter for plan, tool, reflect; run the train stage first (autoact train --run-dir ${bare})`);
            manifest({ filter: stage({ trajectories: 7, kept: 0 }), train: stage({ plan_samples: 0 }) });
            await expect(writeDeployment({ runDir: bare })).rejects.toThrow("no adapter for plan, tool, reflect; the train stage had no samples for them (the filter kept 0 of 7 trajectories): nothing to serve but the base model");
            // nor does autoact agent answer with the base model in the sub-agents' place
            const asked = await runCliProcess(["agent", "--run-dir", bare, "--model", stories260K, "Where did Arno Schmidt work?"]);
            expect(asked.code).toBe(2);
            expect(asked.stderr.trim()).toMatch(/^autoact: .*adapters: no adapter for plan, tool, reflect; the train stage had no samples/);
        } finally {
            fs.rmSync(bare, { recursive: true, force: true });
        }
    });
});

describe("autoact agent's last line", () => {
    const limits = { maxSteps: 4, maxContext: 1024, reserveTokens: 256 };
    const ended = (stopReason: EpisodeResult["stopReason"], finalAnswer: string | null, steps: number) => describeEnding({
        steps: Array.from({ length: steps }, (_, index) => ({ index, thought: "", action: "Search", argument: "x", observation: "" })),
        finalAnswer, stopReason, promptTokens: 0, generatedTokens: 0, invalidActions: 0, timeMs: 0
    }, limits);

    it("names the limit that ended an episode and whether it left an answer", () => {
        expect(ended("finished", "Paris", 3)).toBe("answered in 3 steps");
        expect(ended("step_limit", null, 4)).toBe("stopped after 4 steps, the step limit (eval.max_steps): no answer");
        expect(ended("step_limit", "Paris", 4)).toBe("stopped after 4 steps, the step limit (eval.max_steps): its last Finish's answer, not confirmed by Reflect");
        expect(ended("context_limit", null, 1)).toBe("stopped after 1 step: the prompt came within 256 tokens (2 x eval.max_tokens) of the 1024-token context (model.context_size, synth.max_context): no answer");
        expect(ended("invalid", null, 3)).toMatch(/^stopped after 3 steps: no valid action several steps in a row: no answer$/);
    });
});
