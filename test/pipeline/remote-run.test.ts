import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTable } from "../../src/data/table-io.js";
import { runPipeline } from "../../src/pipeline/runner.js";
import { RuntimeFailure } from "../../src/util/errors.js";
import { createProgress } from "../../src/util/progress.js";
import { packageRoot } from "../../src/util/package.js";
import { startFaultProxy, type FaultProxy } from "../llm/fault-proxy.js";
import { serveStoriesWithAdapters, type ServedModel } from "../llm/remote-server.js";
import { BUILD_TIMEOUT_MS, stories260K } from "../train/helpers.js";

const haveShared = fs.existsSync(stories260K) && fs.existsSync(path.resolve(packageRoot, "../shared/datasets/hotpotqa/easy.jsonl"));
if (!haveShared)
    console.warn("skipping remote pipeline runs: stories260K or the shared datasets are absent");

let served: ServedModel;
let proxy: FaultProxy;

beforeAll(async () => {
    if (!haveShared)
        return;
    served = await serveStoriesWithAdapters("remote-run", { lr: 1e-3 });
    proxy = await startFaultProxy(served.server.url);
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
    await proxy?.close();
    await served?.close();
});

const quick = [
    "model.context_size=1024", "model.parallel=4", "instruct.max_tokens=48", "synth.max_steps=3", "synth.max_tokens=24",
    "synth.batch_size=1", "eval.max_steps=2", "eval.max_tokens=16", "model.backend=openai", "model.retries=1",
    // an empty corpus: the tools say so (the official corpus file is a download)
    "data.corpus=[]",
    // synth.batch_size=1 (two synth batches to kill between) makes eval go one episode at a
    // time: one eval set and two methods keep the test short (group planning is the one
    // that asks the server for adapters)
    "data.eval=[{name: easy, format: hotpotqa, file: easy.jsonl}]", "eval.methods=[group, cot]"
];
const silent = { progress: createProgress({ silent: true }), log: () => {} };

/**
 * synth and eval of pipelines/hotpotqa.yaml through llama-server: group planning picks each
 * sub-agent's adapter per request. The server is SIGKILLed in the middle of a synth batch;
 * the run fails with one line, and a rerun against the restarted server finishes with every
 * row once, in order (eval rows: the same as an uninterrupted run's).
 */
describe.skipIf(!haveShared)("pipeline through a remote llama-server", () => {
    const options = (runDir: string, url: string) => ({
        configFile: path.join(packageRoot, "pipelines", "hotpotqa.yaml"), model: stories260K, runDir, limit: 4,
        dataDirs: [path.resolve(packageRoot, "../shared/datasets/hotpotqa")],
        skip: ["train" as const], set: [...quick, `model.endpoints=[${url}]`], adapters: served.adapters, ...silent
    });

    it("runs synth and eval remotely, and resumes after the server is killed mid-batch with no row lost", { timeout: 900_000 }, async () => {
        const straight = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-remote-straight-"));
        await runPipeline(options(straight, served.server.url));
        const expectedIds = (await readTable(path.join(straight, "trajectories.arrow"), "trajectories")).map((t) => t.id);
        const expectedEval = (await readTable(path.join(straight, "eval-easy.arrow"), "eval")).map((r) => `${r.method}:${r.task_id}`);
        // The seeds at least (the tiny model writes few parsable new tasks): two synth batches or more.
        expect(expectedIds.length).toBeGreaterThanOrEqual(2);
        expect(new Set(expectedEval).size).toBe(expectedEval.length);

        const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-remote-killed-"));
        // Kill the server in the middle of the second synth batch: at its first request after
        // the first batch's part file is written (synth's requests carry the ReAct line stop).
        const synthParts = path.join(runDir, "parts", "synth");
        const firstBatchDone = () => fs.existsSync(synthParts)
            && fs.readdirSync(synthParts).some((hash) => fs.readdirSync(path.join(synthParts, hash)).includes("batch-000000.arrow"));
        let killed = false;
        proxy.requests.length = 0;
        proxy.plan = () => {
            if (!killed && JSON.stringify(proxy.requests.at(-1)?.stop) === JSON.stringify(["\n"]) && firstBatchDone()) {
                killed = true;
                served.server.process.kill("SIGKILL");
            }
            return "forward";
        };
        const error = await runPipeline(options(runDir, proxy.url)).catch((e: unknown) => e);
        expect(killed).toBe(true);
        expect(error).toBeInstanceOf(RuntimeFailure);
        expect((error as Error).message).toMatch(/^remote model: http:\/\/127\.0\.0\.1:\d+ POST \/v1\/completions: .*\(gave up after 2 tries\)$/);
        expect(fs.existsSync(path.join(runDir, "trajectories.arrow"))).toBe(false);

        proxy.plan = () => "forward";
        await served.restart();
        const resumed = await runPipeline(options(runDir, proxy.url));
        const synth = resumed.stages.find((s) => s.stage === "synth")!;
        expect(synth.status).toBe("ran");
        expect(Number(synth.record!.stats!.resumed)).toBeGreaterThan(0);
        // Every task once, in task order (the tasks themselves are sampled text, so compare with this run's own).
        const tasks = await readTable(path.join(runDir, "tasks.arrow"), "tasks");
        const ids = (await readTable(path.join(runDir, "trajectories.arrow"), "trajectories")).map((t) => t.id);
        expect(ids).toEqual(tasks.slice(0, 4).map((t) => `traj-${t.id}`));
        expect(ids).toHaveLength(expectedIds.length);
        const evalRows = await readTable(path.join(runDir, "eval-easy.arrow"), "eval");
        expect(evalRows.map((r) => `${r.method}:${r.task_id}`)).toEqual(expectedEval);
        const stats = resumed.stages.find((s) => s.stage === "eval")!.record!.stats!;
        expect(String(stats.adapters)).toMatch(/plan=.*plan\.gguf,tool=.*tool\.gguf,reflect=.*reflect\.gguf/);
        // Group planning asked the server for each sub-agent's adapter by id.
        const loras = new Set(proxy.requests.map((r) => JSON.stringify((r.lora as { scale: number }[]).map((l) => l.scale))));
        expect(loras).toContain("[0,0,0]"); // the meta-agent (synth, react, cot): the base
        expect(loras).toContain("[1,0,0]"); // the plan agent
        for (const scales of loras)
            expect(["[0,0,0]", "[1,0,0]", "[0,1,0]", "[0,0,1]"]).toContain(scales);
        fs.rmSync(straight, { recursive: true, force: true });
        fs.rmSync(runDir, { recursive: true, force: true });
    });
});
