import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inspectTable } from "../../src/data/inspect.js";
import { exportJsonl, withAgentSuffix } from "../../src/data/export.js";
import { renderRows } from "../../src/data/render.js";
import type { SampleRow, TrajectoryRow } from "../../src/data/schemas.js";
import { writeTable } from "../../src/data/table-io.js";
import { packageRoot } from "../../src/util/package.js";
import { runCliProcess } from "../helpers/cli.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-inspect-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const trajectoriesFile = path.join(dir, "trajectories.arrow");
const samplesFile = path.join(dir, "samples.arrow");

function trajectory(i: number): TrajectoryRow {
    return {
        id: `traj-${i}`, task_id: `task-${i}`, question: `Which city is older,\n${"Rome ".repeat(30)}or Athens? (${i})`, gold_answer: "Athens",
        steps: i === 0 ? [] : [
            { index: 0, thought: "I should search.", action: "Search", argument: "Athens", observation: "Athens is…\nancient" },
            { index: 1, thought: "Done.", action: "Finish", argument: "Athens", observation: "" }
        ],
        final_answer: i === 0 ? null : "Athens", stop_reason: i === 0 ? "step_limit" : "finished",
        prompt_tokens: 100 + i, generated_tokens: 20, time_ms: 12.5, batch: 0
    };
}

const agents = ["plan", "tool", "reflect"] as const;
function sample(i: number): SampleRow {
    return { id: `s${i}`, agent: agents[i % 3]!, trajectory_id: "traj-1", step: i, kind: "thought", input: `prompt ${i} ✓`, output: `answer ${i}` };
}

beforeAll(async () => {
    await writeTable(trajectoriesFile, "trajectories", Array.from({ length: 25 }, (_, i) => trajectory(i)), { rowsPerBatch: 10 });
    await writeTable(samplesFile, "samples", Array.from({ length: 7 }, (_, i) => sample(i)));
});

async function capture(options: Parameters<typeof inspectTable>[0]): Promise<string> {
    let text = "";
    await inspectTable({ ...options, write: (t) => void (text += t) });
    return text;
}

function readJsonl(file: string): unknown[] {
    return fs.readFileSync(file, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as unknown);
}

describe("inspectTable", () => {
    it("table format: schema with types, row count, the head, long cells cut", async () => {
        const text = await capture({ file: trajectoriesFile, head: 3, width: 100 });
        expect(text).toContain("table:   trajectories (schema version 1)");
        expect(text).toContain("rows:    25 in 3 record batches");
        expect(text).toMatch(/steps\s+list<struct<index: int32, thought: utf8, action: utf8, argument: utf8, observation: utf8>>/);
        expect(text).toMatch(/stop_reason\s+utf8\s+one of: finished \| step_limit \| context_limit \| invalid/);
        expect(text).toContain("first 3 of 25 rows:");
        expect(text).toContain("-[ row 2 ]-");
        expect(text).not.toContain("-[ row 3 ]-");
        expect(text).toContain("…");
        expect(text).toContain("⏎");
        for (const line of text.split("\n").filter((l) => l.includes("│")))
            expect(Array.from(line).length).toBeLessThanOrEqual(100);
    });

    it("table format: narrow tables print as columns", async () => {
        const text = await capture({ file: samplesFile, head: 2, width: 200 });
        const lines = text.split("\n");
        const header = lines.find((l) => l.startsWith("id"));
        expect(header).toMatch(/^id\s+│ agent\s+│ trajectory_id/);
        expect(lines.some((l) => l.startsWith("s1 ") && l.includes("tool"))).toBe(true);
    });

    it("table format: --agent shows only that agent's samples", async () => {
        const text = await capture({ file: samplesFile, agent: "tool", width: 200 });
        expect(text).toContain("first 2 rows of agent tool (7 rows in all):");
        const dataLines = text.split("\n").filter((l) => /^s\d/.test(l));
        expect(dataLines.map((l) => l.split(" ")[0])).toEqual(["s1", "s4"]);
    });

    it("jsonl format: every row, nested values as JSON; --head limits", async () => {
        const all = (await capture({ file: trajectoriesFile, format: "jsonl" })).trim().split("\n");
        expect(all).toHaveLength(25);
        expect(JSON.parse(all[1]!)).toEqual(trajectory(1));
        const head = (await capture({ file: trajectoriesFile, format: "jsonl", head: 12 })).trim().split("\n");
        expect(head).toHaveLength(12);
    });

    it("json format: one document with fields and rows", async () => {
        const doc = JSON.parse(await capture({ file: samplesFile, format: "json", head: 2 })) as { schemaName: string; numRows: number; rows: unknown[]; fields: unknown[] };
        expect(doc).toMatchObject({ schemaName: "samples", numRows: 7 });
        expect(doc.rows).toEqual([sample(0), sample(1)]);
        expect(doc.fields).toHaveLength(7);
    });

    it("export writes every row, not just the head", async () => {
        const out = path.join(dir, "export", "trajectories.jsonl");
        const result = await inspectTable({ file: trajectoriesFile, head: 1, exportTo: out, write: () => undefined });
        expect(result.exported?.files).toEqual([{ path: out, rows: 25 }]);
        expect(readJsonl(out)).toEqual(Array.from({ length: 25 }, (_, i) => trajectory(i)));
    });

    it("alpaca export: one file per agent", async () => {
        const out = path.join(dir, "alpaca", "samples.jsonl");
        const result = await exportJsonl({ input: samplesFile, output: out, shape: "alpaca" });
        expect(result.files.map((f) => [f.agent, f.rows])).toEqual([["plan", 3], ["tool", 2], ["reflect", 2]]);
        expect(readJsonl(withAgentSuffix(out, "tool"))).toEqual([
            { instruction: "prompt 1 ✓", input: "", output: "answer 1" },
            { instruction: "prompt 4 ✓", input: "", output: "answer 4" }
        ]);
        expect(fs.readdirSync(path.dirname(out)).sort()).toEqual(["samples.plan.jsonl", "samples.reflect.jsonl", "samples.tool.jsonl"]);
    });

    it("a re-export per agent replaces every agent's file: one without rows gets an empty file", async () => {
        const out = path.join(dir, "reexport", "train.jsonl");
        await exportJsonl({ input: samplesFile, output: out, shape: "alpaca" });
        const planOnly = path.join(dir, "plan-only.arrow");
        await writeTable(planOnly, "samples", [sample(0), sample(3)]);
        const text = await capture({ file: planOnly, head: 0, exportTo: out, shape: "alpaca" });
        expect(text).toContain(`exported 2 rows to ${withAgentSuffix(out, "plan")}`);
        expect(text).toContain(`exported 0 rows to ${withAgentSuffix(out, "tool")}`);
        expect(readJsonl(withAgentSuffix(out, "plan"))).toHaveLength(2);
        expect(fs.readFileSync(withAgentSuffix(out, "tool"), "utf8")).toBe("");
        expect(fs.readFileSync(withAgentSuffix(out, "reflect"), "utf8")).toBe("");

        const empty = path.join(dir, "no-samples.arrow");
        await writeTable(empty, "samples", []);
        const none = await capture({ file: empty, head: 0, exportTo: out, shape: "alpaca" });
        expect(none.match(/exported 0 rows to /g)).toHaveLength(3);
        expect(readJsonl(withAgentSuffix(out, "plan"))).toEqual([]);
    });

    it("a .json export is one JSON array (what FastChat and Stanford Alpaca json.load)", async () => {
        const out = path.join(dir, "json", "train.json");
        await exportJsonl({ input: samplesFile, output: out, shape: "sharegpt" });
        expect(JSON.parse(fs.readFileSync(withAgentSuffix(out, "tool"), "utf8"))).toEqual([1, 4].map((i) => ({
            conversations: [{ from: "human", value: `prompt ${i} ✓` }, { from: "gpt", value: `answer ${i}` }]
        })));
        const all = path.join(dir, "json", "all.json");
        await exportJsonl({ input: samplesFile, output: all });
        expect(JSON.parse(fs.readFileSync(all, "utf8"))).toEqual(Array.from({ length: 7 }, (_, i) => sample(i)));
        const empty = path.join(dir, "json", "empty.json");
        await exportJsonl({ input: samplesFile, output: empty, agent: "boss" });
        expect(JSON.parse(fs.readFileSync(empty, "utf8"))).toEqual([]);
    });

    it("--export refuses the input table (by inode) and any .arrow name, writing nothing", async () => {
        const table = path.join(dir, "self.arrow");
        fs.copyFileSync(samplesFile, table);
        const before = fs.readFileSync(table);
        const alias = path.join(dir, "self-alias.jsonl");
        fs.symlinkSync(table, alias);
        await expect(capture({ file: table, head: 0, exportTo: alias })).rejects.toThrow(`--export ${alias}: is the input table ${table}`);
        await expect(capture({ file: table, head: 0, exportTo: table })).rejects.toThrow(/an \.arrow name would replace a table/);
        await expect(capture({ file: table, exportTo: path.join(dir, "other.arrow") })).rejects.toThrow(/an \.arrow name/);
        expect(fs.readFileSync(table)).toEqual(before);
        expect(fs.existsSync(path.join(dir, "other.arrow"))).toBe(false);
    });

    it("--agent on a table that is not samples names --agent", async () => {
        await expect(capture({ file: trajectoriesFile, agent: "plan" })).rejects.toThrow(/^--agent needs a samples table/);
    });

    it("ShareGPT for one agent, printed", async () => {
        const lines = (await capture({ file: samplesFile, format: "jsonl", shape: "sharegpt", agent: "reflect" })).trim().split("\n");
        expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([2, 5].map((i) => ({
            conversations: [{ from: "human", value: `prompt ${i} ✓` }, { from: "gpt", value: `answer ${i}` }]
        })));
    });

    it("--shape refuses tables that are not samples, and printing without --agent", async () => {
        await expect(capture({ file: trajectoriesFile, format: "jsonl", shape: "alpaca" })).rejects.toThrow(/--shape needs a samples table; .* holds the table "trajectories"/);
        await expect(capture({ file: samplesFile, format: "jsonl", shape: "alpaca" })).rejects.toThrow(/add --agent/);
        await expect(capture({ file: samplesFile, format: "jsonl", shape: "alpaca", agent: "boss" })).rejects.toThrow(/--agent must be one of plan, tool, reflect/);
    });
});

describe("renderRows", () => {
    it("shows control characters instead of sending them, counts CJK and emoji as two columns, tells null from \"null\"", () => {
        const rows = [{ a: "red\u001b[31m\r\u009b", b: null }, { a: "東京🙂", b: "null" }, { a: "東京東京東京東京", b: "∅" }];
        expect(renderRows(["a", "b"], rows, { maxCellWidth: 15 }).split("\n")).toEqual([
            "a               │ b",
            "────────────────┼─────",
            "red␛[31m␍\\u009b │ ∅",
            "東京🙂          │ null",
            "東京東京東京東… │ \"∅\""
        ]);
    });
});

const cli = path.join(packageRoot, "dist", "src", "cli", "main.js");
const built = fs.existsSync(cli);
if (!built)
    console.warn(`skipping CLI tests: ${cli} is not built (run npx tsc -p tsconfig.json)`);

function run(...args: string[]) {
    const result = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe.skipIf(!built)("autoact inspect (built CLI)", () => {
    it("prints the table", () => {
        const { code, stdout, stderr } = run("inspect", trajectoriesFile, "--head", "2");
        expect(code, stderr).toBe(0);
        expect(stdout).toContain("rows:    25 in 3 record batches");
        expect(stdout).toContain("first 2 of 25 rows:");
    });

    it("--format jsonl prints every row", () => {
        const { code, stdout, stderr } = run("inspect", trajectoriesFile, "--format", "jsonl");
        expect(code, stderr).toBe(0);
        expect(stdout.trim().split("\n").map((l) => JSON.parse(l) as unknown)).toEqual(Array.from({ length: 25 }, (_, i) => trajectory(i)));
    });

    it("--export writes JSONL", () => {
        const out = path.join(dir, "cli-export.jsonl");
        const { code, stdout, stderr } = run("inspect", samplesFile, "--export", out);
        expect(code, stderr).toBe(0);
        expect(stdout).toContain(`exported 7 rows to ${out}`);
        expect(readJsonl(out)).toEqual(Array.from({ length: 7 }, (_, i) => sample(i)));
    });

    it("--export onto the input table: one line, exit 2, the table intact", () => {
        const table = path.join(dir, "cli-self.arrow");
        fs.copyFileSync(samplesFile, table);
        const { code, stderr } = run("inspect", table, "--head", "0", "--export", table);
        expect(code).toBe(2);
        expect(stderr.trim().split("\n")).toHaveLength(1);
        expect(fs.readFileSync(table)).toEqual(fs.readFileSync(samplesFile));
    });

    it("an interrupt mid-export leaves no temporary file and no half export", { timeout: 60_000 }, async () => {
        const big = path.join(dir, "big-samples.arrow");
        await writeTable(big, "samples", Array.from({ length: 60_000 }, (_, i) => sample(i)), { rowsPerBatch: 200 });
        const outDir = path.join(dir, "interrupted");
        fs.mkdirSync(outDir);
        const temporaries = () => fs.readdirSync(outDir).filter((name) => name.endsWith(".tmp"));
        const result = await runCliProcess(["inspect", big, "--head", "0", "--export", path.join(outDir, "out.jsonl"), "--shape", "alpaca"],
            { interrupt: { when: () => temporaries().length > 0, signal: "SIGINT" } });
        expect(result.code, result.stderr).toBe(130);
        expect(fs.readdirSync(outDir)).toEqual([]);
    });

    it("a missing file: one line, exit 2", () => {
        const missing = path.join(dir, "nope.arrow");
        const { code, stderr, stdout } = run("inspect", missing);
        expect(code).toBe(2);
        expect(stdout).toBe("");
        expect(stderr).toBe(`autoact: table file not found: ${missing}\n`);
    });

    it("a file that is not Arrow: one line, exit 2", () => {
        const bogus = path.join(dir, "bogus.arrow");
        fs.writeFileSync(bogus, "hello, not arrow at all\n");
        const { code, stderr } = run("inspect", bogus);
        expect(code).toBe(2);
        expect(stderr.trim().split("\n")).toHaveLength(1);
        expect(stderr).toContain(`not a readable Arrow IPC file: ${bogus}`);
    });

    it("a truncated Arrow file: one line that says so, no arrow-js internals", () => {
        const cut = path.join(dir, "cut.arrow");
        const bytes = fs.readFileSync(trajectoriesFile);
        fs.writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
        const { code, stderr } = run("inspect", cut);
        expect(code).toBe(2);
        expect(stderr).toBe(`autoact: not a readable Arrow IPC file: ${cut} (truncated: it ends before the Arrow file footer; was its write cut short?)\n`);
    });

    it("a bad flag value: exit 2", () => {
        const { code, stderr } = run("inspect", samplesFile, "--format", "xml");
        expect(code).toBe(2);
        expect(stderr).toMatch(/format/);
    });
});
