import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { readTable, writeTable } from "../../src/data/table-io.js";
import { packageRoot } from "../../src/util/package.js";
import { runCliProcess } from "../helpers/cli.js";
import { writeAdapter } from "./gguf-fixtures.js";

const shared = path.resolve(packageRoot, "../shared");
const tinyModel = path.join(shared, "models", "stories260K.gguf");
const haveShared = fs.existsSync(tinyModel) && fs.existsSync(path.join(shared, "datasets", "hotpotqa", "easy.jsonl"));
if (!haveShared)
    console.warn("skipping eval --plan: stories260K or the shared HotpotQA data is absent");

describe.skipIf(!haveShared)("autoact eval --plan FILE alone", () => {
    it("evaluates with the plan adapter; tool and reflect run on the base model (it used to crash)", { timeout: 300_000 }, async () => {
        const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-eval-plan-"));
        fs.writeFileSync(path.join(runDir, "config.yaml"), [
            "name: eval-plan", "model:", `  path: ${tinyModel}`, "  context_size: 1024",
            "data:", "  eval:", "    - { name: easy, format: hotpotqa, file: easy.jsonl, limit: 0 }",
            "eval:", "  methods: [group]", "  max_steps: 2", "  max_tokens: 16", ""
        ].join("\n"));
        await writeTable(path.join(runDir, "tools.arrow"), "tools", [{ name: "Search", selected: true, rank: 1, reason: "", fallback: false, raw: "" }]);
        const plan = await writeAdapter(path.join(runDir, "plan-adapter.gguf"));
        const result = await runCliProcess(["eval", "--run-dir", runDir, "--plan", plan, "--limit", "1", "--data", path.join(shared, "datasets", "hotpotqa")]);
        expect(result.code, result.stderr).toBe(0);
        expect(result.stderr).toContain("eval: the tool and reflect agents run on the base model");
        const rows = await readTable(path.join(runDir, "eval-easy.arrow"), "eval");
        expect(rows.map((r) => r.method)).toEqual(["group"]);
        const manifest = JSON.parse(fs.readFileSync(path.join(runDir, "manifest.json"), "utf8"));
        expect(manifest.stages.eval.stats.adapters).toBe(`plan=${plan}`);
    });
});
