import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { configValue, producerOf, stageDefinitions, stageInputHash } from "../../src/pipeline/runner.js";
import { defaultConfig, stageNames, type PipelineConfig } from "../../src/pipeline/config-schema.js";
import { configRead, tablesRead, type StageContext, type StageDefinition } from "../../src/pipeline/context.js";
import { RunDir } from "../../src/pipeline/run-dir.js";
import { DataLocator } from "../../src/pipeline/data-locator.js";
import type { SubAgentAdapters } from "../../src/pipeline/stages/eval.js";

/** A data folder with the files the test config names (seeds, one eval set, one corpus file). */
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-decl-data-"));
// (and the names that changed() makes of them)
for (const name of ["seeds.json", "easy.jsonl", "pages.jsonl", "seeds.json-changed", "pages.jsonl-changed", "easy.jsonl-changed"])
    fs.writeFileSync(path.join(dataDir, name), `contents of ${name}`);

/** A context with just what input hashing reads: the config, the run directory, the data folder, --limit. */
function contextFor(config: PipelineConfig, dir: string, limit: number | null = null): StageContext {
    return { config, runDir: new RunDir(dir), limit, data: new DataLocator({ dataDirs: [dataDir], cacheDir: dataDir }) } as unknown as StageContext;
}

function runDirWithTables(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-decl-"));
    const context = contextFor(defaultConfig, dir);
    for (const stage of Object.values(stageDefinitions())) {
        for (const table of tablesRead(stage.reads, context))
            fs.writeFileSync(path.join(dir, table), `contents of ${table}`);
    }
    return dir;
}

/** A changed copy of a config value (a section changes in its first leaf). */
function changed(value: unknown): unknown {
    if (typeof value === "number")
        return value + 1;
    if (typeof value === "string")
        return `${value}-changed`;
    if (typeof value === "boolean")
        return !value;
    if (Array.isArray(value))
        return [...value, value.length > 0 ? changed(value[0]) : "added"];
    const entries = Object.entries(value as Record<string, unknown>);
    return { ...(value as object), [entries[0]![0]]: changed(entries[0]![1]) };
}

function withKey(config: PipelineConfig, key: string, value: unknown): PipelineConfig {
    const copy = structuredClone(config);
    const parts = key.split(".");
    let cursor = copy as unknown as Record<string, unknown>;
    for (const part of parts.slice(0, -1))
        cursor = cursor[part] as Record<string, unknown>;
    cursor[parts.at(-1)!] = value;
    return copy;
}

/** The config with the value at `key` changed (`list[].field`: in every element). */
function changedAt(config: PipelineConfig, key: string): PipelineConfig {
    const [list, field] = key.split("[].");
    if (field == null)
        return withKey(config, key, changed(configValue(config, key)));
    const elements = (configValue(config, list!) as Record<string, unknown>[]).map((element) => ({ ...element, [field]: changed(element[field]) }));
    return withKey(config, list!, elements);
}

const hash = async (stage: StageDefinition, config: PipelineConfig, dir: string, limit: number | null = null, model = "model-hash") =>
    stageInputHash(stage, contextFor(config, dir, limit), model);

describe("stage declarations drive input hashes and producer lookup", () => {
    const dir = runDirWithTables();
    const config = structuredClone(defaultConfig);
    config.data.eval = [{ name: "easy", format: "hotpotqa", file: "easy.jsonl", limit: 0 }];
    config.data.seeds = "seeds.json";
    config.data.corpus = ["pages.jsonl"];
    config.eval.methods = ["group", "react-fewshot"];
    const definitions = stageDefinitions();

    it("every declared config key exists, and changing any of them makes the stage stale", async () => {
        for (const stage of stageNames.map((name) => definitions[name])) {
            const before = await hash(stage, config, dir);
            expect(await hash(stage, config, dir), stage.name).toBe(before);
            for (const key of configRead(stage.reads, contextFor(config, dir))) {
                const after = await hash(stage, changedAt(config, key), dir);
                expect(after, `${stage.name}: ${key}`).not.toBe(before);
            }
        }
    });

    it("the keys the audit found unhashed are declared where they are read", async () => {
        const stale = async (stage: string, key: string) =>
            await hash(definitions[stage as "eval"], withKey(config, key, changed(configValue(config, key))), dir) !== await hash(definitions[stage as "eval"], config, dir);
        expect(await stale("eval", "synth.batch_size")).toBe(true);
        expect(await stale("eval", "synth.max_context")).toBe(true);
        expect(await stale("instruct", "model.parallel")).toBe(true);
        for (const stage of ["instruct", "select-tools", "synth", "eval"])
            expect(await stale(stage, "model.context_size"), stage).toBe(true);
        // A key a stage does not read leaves it up to date.
        expect(await stale("filter", "synth.batch_size")).toBe(false);
        expect(await stale("split", "model.context_size")).toBe(false);
        // nor a setting that changes nothing it makes: the metric the report names first, an eval
        // set's limit or name where its questions are only held out, the corpus in seeds mode
        for (const stage of ["instruct", "synth", "filter", "split", "eval"])
            expect(await stale(stage, "task.metric"), stage).toBe(false);
        const evalLimit = withKey(config, "data.eval", config.data.eval.map((set) => ({ ...set, limit: 5, name: "other" })));
        for (const stage of ["instruct", "filter", "split"])
            expect(await hash(definitions[stage as "filter"], evalLimit, dir), stage).toBe(await hash(definitions[stage as "filter"], config, dir));
        expect(await stale("instruct", "data.corpus")).toBe(false);
        expect(await hash(definitions.instruct, withKey(withKey(config, "data.corpus", ["pages.jsonl-changed"]), "instruct.mode", "grounded"), dir))
            .not.toBe(await hash(definitions.instruct, withKey(config, "instruct.mode", "grounded"), dir));
    });

    it("an input table's content, the model and --limit are inputs where declared", async () => {
        const synth = definitions.synth;
        const before = await hash(synth, config, dir);
        expect(await hash(synth, config, dir, 3)).not.toBe(before);
        expect(await hash(synth, config, dir, null, "other-model")).not.toBe(before);
        expect(await hash(definitions.filter, config, dir, null, "other-model")).toBe(await hash(definitions.filter, config, dir));
        const tasks = path.join(dir, "tasks.arrow");
        const saved = fs.readFileSync(tasks);
        fs.writeFileSync(tasks, "other tasks");
        expect(await hash(synth, config, dir)).not.toBe(before);
        fs.writeFileSync(tasks, saved);
        expect(await hash(synth, config, dir)).toBe(before);
    });

    it("adapters are eval inputs by content: a changed byte with the same size and mtime makes eval stale", async () => {
        const adapter = path.join(dir, "plan-adapter.gguf");
        const fixed = new Date("2025-01-01T00:00:00Z");
        fs.writeFileSync(adapter, "adapter bytes A");
        fs.utimesSync(adapter, fixed, fixed);
        const stat = fs.statSync(adapter);
        const evalWith = (adapters: SubAgentAdapters) => stageDefinitions(adapters).eval;
        const before = await hash(evalWith({ plan: adapter }), config, dir);
        fs.writeFileSync(adapter, "adapter bytes B");
        fs.utimesSync(adapter, fixed, fixed);
        expect(fs.statSync(adapter).mtimeMs).toBe(stat.mtimeMs);
        expect(await hash(evalWith({ plan: adapter }), config, dir)).not.toBe(before);
        // Which agent an adapter serves is part of the input too.
        expect(await hash(evalWith({ tool: adapter }), config, dir)).not.toBe(await hash(evalWith({ plan: adapter }), config, dir));
        // The run directory's own adapters count the same way.
        fs.mkdirSync(path.join(dir, "adapters"), { recursive: true });
        const noAdapters = await hash(definitions.eval, config, dir);
        fs.writeFileSync(path.join(dir, "adapters", "tool.gguf"), "trained");
        expect(await hash(definitions.eval, config, dir)).not.toBe(noAdapters);
    });

    it("a missing input table names the stage that declares it writes it", async () => {
        const empty = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-decl-"));
        const context = contextFor(config, empty);
        for (const stage of stageNames.map((name) => definitions[name])) {
            for (const table of tablesRead(stage.reads, context)) {
                const producer = producerOf(table, context);
                expect(producer, table).not.toBeNull();
                expect(stageNames.indexOf(producer!), `${table} is written before ${stage.name}`).toBeLessThan(stageNames.indexOf(stage.name));
                await expect(stageInputHash(stage, context, "m")).rejects.toThrow(/run the .* stage first/);
            }
        }
        expect(producerOf("eval-easy.arrow", context)).toBe("eval");
        expect(producerOf("adapters/plan.gguf", context)).toBe("train");
    });

    it("data files are inputs by content where they are read: seeds, eval sets, corpus sources", async () => {
        const edit = async (name: string) => {
            const file = path.join(dataDir, name);
            const saved = fs.readFileSync(file, "utf8");
            const before = Object.fromEntries(await Promise.all(stageNames.map(async (stage) => [stage, await hash(definitions[stage], config, dir)])));
            fs.writeFileSync(file, `${saved} edited`);
            const stale = [];
            for (const stage of stageNames)
                if (await hash(definitions[stage], config, dir) !== before[stage])
                    stale.push(stage);
            fs.writeFileSync(file, saved);
            return stale;
        };
        expect(await edit("seeds.json")).toEqual(["instruct", "eval"]); // eval: few-shot exemplars
        expect(await edit("easy.jsonl")).toEqual(["instruct", "filter", "eval"]); // instruct, filter: eval questions held out of training
        expect(await edit("pages.jsonl")).toEqual(["synth", "eval"]);
        const grounded = withKey(config, "instruct.mode", "grounded");
        const before = await hash(definitions.instruct, grounded, dir);
        const pages = path.join(dataDir, "pages.jsonl");
        const saved = fs.readFileSync(pages, "utf8");
        fs.writeFileSync(pages, `${saved} edited`);
        expect(await hash(definitions.instruct, grounded, dir)).not.toBe(before);
        fs.writeFileSync(pages, saved);
    });

    it("the model's identity is the GGUF, the backend and the served model; adding an endpoint keeps a stage up to date", async () => {
        const before = await hash(definitions.synth, config, dir);
        expect(await hash(definitions.synth, withKey(config, "model.backend", "openai"), dir)).not.toBe(before);
        expect(await hash(definitions.synth, withKey(config, "model.served_name", "qwen2.5-72b"), dir)).not.toBe(before);
        expect(await hash(definitions.synth, withKey(config, "model.endpoints", ["http://127.0.0.1:8081"]), dir)).toBe(before);
        expect(await hash(definitions.filter, withKey(config, "model.backend", "openai"), dir)).toBe(await hash(definitions.filter, config, dir));
    });
});
