import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { packageRoot } from "../../src/util/package.js";
import { runCliProcess } from "../helpers/cli.js";
import { listProcesses } from "../helpers/processes.js";
import { hasStories, stories260K } from "../train/helpers.js";

/**
 * An interrupt sent to the CLI process alone (as a process manager or `kill PID` sends it): one
 * line and exit 130/143, the run directory unlocked, a rerun continuing; no server left behind.
 */

/** Processes whose command line mentions `text`. */
const processesMentioning = (text: string) => listProcesses().filter((p) => p.cmdline.includes(text));

const lastLine = (text: string) => text.trim().split("\n").at(-1);

describe.skipIf(!hasStories)("an interrupt", () => {
    it("ends `autoact run` with one line and exit 130, unlocks the run, and the rerun continues", { timeout: 300_000 }, async () => {
        const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-interrupt-"));
        const args = ["run", path.join(packageRoot, "pipelines", "hotpotqa.yaml"), "--model", stories260K, "--run-dir", runDir,
            "--data", path.resolve(packageRoot, "../shared/datasets/hotpotqa"), "--limit", "8", "--skip", "train",
            ...["data.corpus=[]", "model.context_size=1024", "model.parallel=2", "instruct.max_tokens=32", "synth.max_steps=4",
                "synth.max_tokens=32", "eval.max_steps=2", "eval.max_tokens=16", "eval.methods=[group]"].flatMap((s) => ["--set", s])];
        const interrupted = await runCliProcess(args, { interrupt: { when: /^synth: /m, signal: "SIGINT" } });
        expect(interrupted.code).toBe(130);
        expect(lastLine(interrupted.stderr)).toBe("autoact: interrupted (SIGINT); what finished is kept: run the same command again to continue a pipeline");
        expect(fs.existsSync(path.join(runDir, ".lock"))).toBe(false);
        const manifest = JSON.parse(fs.readFileSync(path.join(runDir, "manifest.json"), "utf8")) as { stages: Record<string, { status: string }> };
        expect(manifest.stages.instruct?.status).toBe("done");

        const rerun = await runCliProcess(args);
        expect(rerun.code, rerun.stderr).toBe(0);
        expect(rerun.stderr).toMatch(/^instruct: up to date$/m);
        expect(rerun.stderr).toMatch(/^synth: done in /m);
        fs.rmSync(runDir, { recursive: true, force: true });
    });

    it("ends `autoact bench remote` (SIGTERM) with exit 143 and stops the llama-server it started", { timeout: 300_000 }, async () => {
        // a model file of its own, so the server's command line is this test's alone
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-interrupt-server-"));
        const model = path.join(dir, "interrupt-test-model.gguf");
        fs.copyFileSync(stories260K, model);
        const result = await runCliProcess(["bench", "remote", "--model", model, "--parallel", "2", "--tg", "4000", "--reps", "5", "--threads", "1"],
            { interrupt: { when: /bench: warm-up/, signal: "SIGTERM" } });
        expect(result.code).toBe(143);
        expect(lastLine(result.stderr)).toMatch(/^autoact: interrupted \(SIGTERM\)/);
        for (let i = 0; i < 50 && processesMentioning(model).length > 0; i++)
            await new Promise((resolve) => setTimeout(resolve, 100)); // SIGTERM takes a moment
        const left = processesMentioning(model);
        for (const { pid } of left)
            process.kill(pid, "SIGKILL"); // a failing run leaves nothing behind either
        expect(left).toEqual([]);
        fs.rmSync(dir, { recursive: true, force: true });
    });
});
