import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { describe, expect, it } from "vitest";
import { packageRoot } from "../../src/util/package.js";
import { runCliProcess } from "../helpers/cli.js";
import { readTable } from "../../src/data/table-io.js";

const tinyModel = path.resolve(packageRoot, "../shared/models/stories260K.gguf");
const haveShared = fs.existsSync(tinyModel) && fs.existsSync(path.resolve(packageRoot, "../shared/datasets/hotpotqa/easy.jsonl"));
const lockModule = path.join(packageRoot, "dist/src/pipeline/run-lock.js");
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "autoact-lock-"));

/** A second real process that takes the run directory's lock and prints "locked" (or its error). */
function holder(dir: string, holdMs: number): ChildProcess {
    const script = `import(${JSON.stringify(lockModule)}).then(({ RunLock }) => {
        try { RunLock.acquire(${JSON.stringify(dir)}); console.log("locked"); setTimeout(() => {}, ${holdMs}); }
        catch (e) { console.log("refused " + e.message); }
    });`;
    return spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
}

function firstLine(child: ChildProcess): Promise<string> {
    return new Promise((resolve) => {
        let out = "";
        child.stdout!.on("data", (chunk) => {
            out += chunk;
            if (out.includes("\n"))
                resolve(out.split("\n")[0]!);
        });
        child.on("exit", () => resolve(out.trim()));
    });
}

const exited = (child: ChildProcess) => new Promise((resolve) => (child.exitCode != null ? resolve(null) : child.once("exit", resolve)));

describe("run-directory lock", () => {
    it("a second process on a locked run directory exits 2 naming the holder's PID; a dead holder's lock is taken over", { timeout: 60_000 }, async () => {
        const dir = tmp();
        const config = path.join(dir, "p.yaml");
        fs.writeFileSync(config, "name: locked\n");
        const runDir = path.join(dir, "run");
        fs.mkdirSync(runDir);
        const first = holder(runDir, 60_000);
        expect(await firstLine(first)).toBe("locked");

        // filter and split need no model: the CLI gets as far as the lock at once.
        const refused = await runCliProcess(["filter", "--config", config, "--run-dir", runDir]);
        expect(refused.code).toBe(2);
        expect(refused.stderr.trim().split("\n")).toEqual([
            `autoact: run directory ${runDir} is in use by process ${first.pid} (lock ${path.join(runDir, ".lock")}); wait for it or stop it`
        ]);

        first.kill("SIGKILL");
        await exited(first);
        expect(fs.readFileSync(path.join(runDir, ".lock"), "utf8").trim()).toMatch(new RegExp(`^${first.pid} \\d+$`));
        // The stale lock is taken over: the run gets past it to the stage's own complaint.
        const next = await runCliProcess(["filter", "--config", config, "--run-dir", runDir]);
        expect(next.code).toBe(2);
        expect(next.stderr).toMatch(/stage filter needs .*trajectories\.arrow; run the synth stage first/);
        expect(fs.existsSync(path.join(runDir, ".lock"))).toBe(false);

        // A lock whose PID now belongs to another process (reused after a crash or a restart) is stale too.
        fs.writeFileSync(path.join(runDir, ".lock"), `${process.pid} 1\n`);
        const reused = await runCliProcess(["filter", "--config", config, "--run-dir", runDir]);
        expect(reused.stderr).toMatch(/stage filter needs .*trajectories\.arrow/);
    });

    it.skipIf(!haveShared)("two `autoact run` on one run directory: the second exits 2 naming the first's PID; the first's tables are whole", { timeout: 300_000 }, async () => {
        const dataDir = tmp();
        fs.writeFileSync(path.join(dataDir, "seeds.json"), JSON.stringify([
            { Question: "Which number comes after 1?", Answer: "2" }, { Question: "Which number comes after 8?", Answer: "9" }
        ]));
        const runDir = path.join(tmp(), "run");
        const args = ["run", path.join(packageRoot, "pipelines", "hotpotqa.yaml"), "--model", tinyModel, "--run-dir", runDir, "--data", dataDir,
            "--until", "synth", "--set", "data.corpus=[]", "--set", "data.eval=[]", "--set", "instruct.target=0", "--set", "synth.batch_size=1", "--set", "synth.max_steps=2", "--set", "synth.max_tokens=24"];
        const first = spawn(process.execPath, [path.join(packageRoot, "dist/src/cli/main.js"), ...args], { stdio: "ignore", env: { ...process.env, CI: "1" } });
        const firstDone = new Promise<number | null>((resolve) => first.once("exit", resolve));
        const manifest = path.join(runDir, "manifest.json");
        while (!fs.existsSync(manifest) || !fs.readFileSync(manifest, "utf8").includes('"running"'))
            await new Promise((resolve) => setTimeout(resolve, 20));
        const second = await runCliProcess(args);
        expect(second.code).toBe(2);
        expect(second.stderr).toContain(`is in use by process ${first.pid}`);
        expect(await firstDone).toBe(0);
        const trajectories = await readTable(path.join(runDir, "trajectories.arrow"), "trajectories");
        expect(trajectories.map((t) => t.task_id)).toEqual(["seed-1", "seed-2"]);
    });

    it("of several processes racing for one run directory exactly one wins", { timeout: 60_000 }, async () => {
        const runDir = tmp();
        fs.writeFileSync(path.join(runDir, ".lock"), "999999999\n"); // stale: no such PID
        const children = Array.from({ length: 4 }, () => holder(runDir, 3_000));
        const lines = await Promise.all(children.map(firstLine));
        expect(lines.filter((l) => l === "locked")).toHaveLength(1);
        expect(lines.filter((l) => l.startsWith("refused run directory"))).toHaveLength(3);
        await Promise.all(children.map(exited));
    });

    it("a fresh run directory that is rejected before any stage ran is not left behind", async () => {
        const dir = tmp();
        const config = path.join(dir, "p.yaml");
        fs.writeFileSync(config, "name: fresh\n");
        const runDir = path.join(dir, "never");
        const result = await runCliProcess(["filter", "--config", config, "--run-dir", runDir]);
        expect(result.code).toBe(2);
        expect(fs.existsSync(runDir)).toBe(false);
    });

    it("a run directory under /proc fails at once with one line", { timeout: 20_000 }, async () => {
        const dir = tmp();
        const config = path.join(dir, "p.yaml");
        fs.writeFileSync(config, "name: proc\n");
        const started = Date.now();
        const result = await runCliProcess(["filter", "--config", config, "--run-dir", "/proc/x"]);
        expect(Date.now() - started).toBeLessThan(10_000);
        expect(result.code).toBe(2);
        expect(result.stderr.trim().split("\n")).toHaveLength(1);
        expect(result.stderr).toMatch(/cannot create run directory \/proc\/x/);
    });
});
