import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadBenchResults } from "../../src/bench/index.js";
import { packageRoot } from "../../src/util/package.js";
import { tempDir } from "./helpers.js";

const script = path.join(packageRoot, "bench", "gpu", "run.sh");
const cli = path.join(packageRoot, "dist", "src", "cli", "main.js");
const built = fs.existsSync(cli);
if (!built)
    console.warn(`skipping the GPU suite's CPU path: ${cli} is not built (run npx tsc -p tsconfig.json)`);

let dir: string;
beforeAll(() => {
    dir = tempDir("gpu-suite");
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const run = (args: string[], env: Record<string, string> = {}) => spawnSync("bash", [script, ...args], {
    encoding: "utf8", timeout: 900_000,
    env: { ...process.env, NODE: process.execPath, AUTOACT_CACHE: path.join(dir, "cache"), ...env }
});

describe.skipIf(!built)("bench/gpu/run.sh", () => {
    it("runs its CPU path: the trainer's checks, tiny models, inference and training results, and the report", () => {
        const out = path.join(dir, "results");
        const report = path.join(dir, "REPORT.md");
        // --cpu takes the path a machine without a GPU takes; one thread keeps it quick on shared cores
        const result = run(["--cpu", "--threads", "1", "--check", "--out", out, "--report", report]);
        expect(result.stderr).toContain("CPU backend with tiny models");
        expect(result.status, result.stderr.slice(-2000)).toBe(0);
        const { results, problems } = loadBenchResults(out);
        expect(problems).toEqual([]);
        const kinds = results.map(({ result: r }) => `${r.kind}:${r.fingerprint.model.name}`).sort();
        expect(kinds).toEqual(["infer:synth-tiny-f32.gguf", "infer:synth-tiny-q8_0.gguf", "train:synth-tiny-f32.gguf"]);
        for (const { result: r } of results.filter(({ result: r }) => r.kind === "infer")) {
            expect(r.ratio_pp).toBeGreaterThan(0);
            expect(r.ratio_tg).toBeGreaterThan(0);
            expect(r.tests.map((t) => t.name)).toContain("tg16@4");
            expect(r.tests.map((t) => t.name)).toContain("tg16+lora3");
        }
        // training beside llama-bench's forward pass of the same file (and PyTorch where torch imports)
        const trained = results.find(({ result: r }) => r.kind === "train")!.result;
        expect(trained.ratio_train_to_pp).toBeGreaterThan(0);
        expect(trained.command).toContain("--compare-torch");
        expect(fs.readdirSync(out).filter((f) => f.endsWith(".arrow"))).toHaveLength(3);
        // --check: the trainer's correctness checks (trainer-check.mjs, a GPU's on a GPU), all passed
        const checks = fs.readFileSync(path.join(out, "trainer-check-cpu.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
        expect(checks.length).toBeGreaterThanOrEqual(10);
        expect(checks.filter((c) => !c.pass)).toEqual([]);
        const md = fs.readFileSync(report, "utf8");
        expect(md).toContain("synth-tiny-q8_0");
        expect(fs.existsSync(path.join(dir, "report", "parallel.svg"))).toBe(true);
    });

    it("packs only a portable build (pack.sh): binaries for this CPU's own instructions are refused", () => {
        // the tests' CPU build is this machine's own (-march=native)
        const packed = spawnSync("bash", [path.join(packageRoot, "bench", "gpu", "pack.sh"), "--backend", "cpu", "--out", path.join(dir, "pack.tar.xz")], { encoding: "utf8" });
        expect(packed.status, packed.stderr).toBe(2);
        expect(packed.stderr.trim()).toMatch(/^pack\.sh: native\/build\/cpu( was built for this CPU only|\/bin\/autoact-train is missing): run npm run build.* --backend cpu --portable first$/);
        expect(fs.existsSync(path.join(dir, "pack.tar.xz"))).toBe(false);
    });

    it("refuses unknown arguments and a missing node binary", () => {
        const bad = run(["--frobnicate"]);
        expect(bad.status).toBe(2);
        expect(bad.stderr.trim()).toBe("run.sh: unknown argument --frobnicate (see bench/gpu/README.md)");
        const noNode = run(["--cpu"], { NODE: path.join(dir, "no-node") });
        expect(noNode.status).toBe(1);
        expect(noNode.stderr).toMatch(/^run\.sh: node not found: copy node's binary/m);
    });
});
