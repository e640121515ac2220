import path from "node:path";
import type { SampleRow, TaskRow, ToolRow, TrajectoryRow } from "../data/schemas.js";
import { writeTable } from "../data/table-io.js";
import { readJsonFile, readJsonRecords } from "../data/datasets/records.js";
import { observations, runEpisode, type StepPolicy, type ToolRunner } from "../agents/episode.js";
import { cleanThought } from "../agents/policies.js";
import type { EpisodeStep } from "../agents/react-format.js";
import { parseAction, toolNameKey } from "../tools/parse.js";
import { createToolLibrary, ToolSession } from "../tools/index.js";
import { InputError } from "../util/errors.js";
import { writeFileAtomicSync } from "../util/fs.js";
import { configToYaml, loadConfig } from "./config.js";
import { RunDir } from "./run-dir.js";
import { withRunLock } from "./run-lock.js";
import { readSeeds } from "./seeds.js";

/**
 * Reads the files the original AutoAct (zjunlp/AutoAct, Python) writes into a run
 * directory's tables, so that filter, split, train and eval run on them:
 * - its trajectory JSONL (`question`, `answer`, `correct`, `prompt`: the whole ReAct
 *   scratchpad) -> tasks.arrow, tools.arrow (the tools its header lists) and trajectories.arrow;
 * - its self-instruct JSON ([{Question, Answer}]) -> more tasks.arrow rows;
 * - its division-of-labor files data_plan.json / data_action.json / data_reflect.json
 *   ([{input, output}]) -> samples.arrow (kept in its own prompt text).
 * The original's tool names map onto this library's (BingSearch -> Search), and its protocol
 * observations onto this project's, so the imported steps read as our own episodes do.
 */
export interface ImportOriginalOptions {
    runDir: string;
    /** The pipeline YAML the run belongs to; saved as the run's config.yaml. */
    configFile: string;
    set?: string[];
    /** The original's trajectory JSONL (synthesis or group-planning output). */
    trajectories?: string;
    /** The original's self-instruct JSON. */
    instruct?: string;
    /** The original's data_plan.json, data_action.json, data_reflect.json. */
    samples?: { plan?: string; tool?: string; reflect?: string };
}

export interface ImportOriginalResult {
    tasks: number;
    trajectories: number;
    /** Of these, the ones the original marked correct. */
    correct: number;
    tools: string[];
    samples: Record<"plan" | "tool" | "reflect", number>;
    written: string[];
}

/** The original's tool names that differ from this library's. */
const toolAliases: Record<string, string> = { bingsearch: "Search", imagecaptioner: "Image2Text", wikisearch: "Retrieve" };

export async function importOriginal(options: ImportOriginalOptions): Promise<ImportOriginalResult> {
    if (options.trajectories == null && options.instruct == null && options.samples == null)
        throw new InputError("autoact import needs at least one of --trajectories, --instruct, --plan/--action/--reflect");
    const { config } = loadConfig(options.configFile, { set: options.set });
    const runDir = new RunDir(options.runDir);
    // Everything is read and checked before anything is written.
    const tasks: TaskRow[] = [];
    const trajectories: TrajectoryRow[] = [];
    let correct = 0;
    let headerTools: string[] = [];
    if (options.instruct != null) {
        readSeeds(options.instruct).forEach((pair, i) => tasks.push(taskRow(`orig-instruct-${i + 1}`, pair.question, pair.answer, pair.image)));
    }
    if (options.trajectories != null) {
        for await (const record of readJsonRecords(options.trajectories, { what: "original trajectory file" })) {
            const where = `${options.trajectories}:${record.line}`;
            const row = record.value as Record<string, unknown>;
            if (row == null || typeof row.prompt !== "string" || typeof row.question !== "string" || row.answer == null)
                throw new InputError(`${where}: expected the original's trajectory row {question, answer, correct, prompt}`);
            const parsed = await parseScratchpad(row.prompt, where);
            if (headerTools.length === 0)
                headerTools = parsed.tools;
            const id = `orig-${trajectories.length + 1}`;
            tasks.push(taskRow(id, row.question, String(row.answer)));
            if (row.correct === true)
                correct++;
            trajectories.push({
                id: `traj-${id}`,
                task_id: id,
                question: row.question,
                gold_answer: String(row.answer),
                steps: parsed.steps.map((step, index) => ({ index, ...step })),
                final_answer: parsed.finalAnswer,
                stop_reason: row.halted === true || parsed.finalAnswer == null ? "step_limit" : "finished",
                prompt_tokens: 0,
                generated_tokens: 0,
                time_ms: 0,
                batch: 0
            });
        }
    }
    const samples: SampleRow[] = [];
    for (const agent of ["plan", "tool", "reflect"] as const) {
        const file = options.samples?.[agent];
        if (file == null)
            continue;
        const value = readJsonFile(file, `original ${agent} samples`);
        if (!Array.isArray(value))
            throw new InputError(`${file}: expected a JSON list of {input, output}`);
        value.forEach((item, i) => {
            const sample = item as Record<string, unknown>;
            if (typeof sample?.input !== "string" || typeof sample.output !== "string")
                throw new InputError(`${file}: sample ${i + 1} needs "input" and "output" strings`);
            const output = renameTools(sample.output);
            samples.push({
                id: `orig-${agent}-${i + 1}`, agent, trajectory_id: "original", step: i,
                kind: sampleKind(agent, output), input: renameTools(sample.input), output
            });
        });
    }

    const tools = headerTools.length > 0 ? headerTools : config.tools.fallback;
    // under the run directory's lock, as a pipeline run writes: no stage writes while the tables come in
    const written = await withRunLock(runDir, async () => {
        const written: string[] = [];
        writeFileAtomicSync(runDir.configFile, configToYaml(config));
        if (tasks.length > 0) {
            await writeTable(runDir.file("tasks.arrow"), "tasks", tasks);
            written.push("tasks.arrow");
        }
        if (trajectories.length > 0) {
            await writeTable(runDir.file("trajectories.arrow"), "trajectories", trajectories);
            written.push("trajectories.arrow");
        }
        if (options.trajectories != null) {
            await writeTable(runDir.file("tools.arrow"), "tools", toolRows(tools, config.tools.library));
            written.push("tools.arrow");
        }
        if (samples.length > 0) {
            await writeTable(runDir.file("samples.arrow"), "samples", samples);
            written.push("samples.arrow");
        }
        const manifest = runDir.readManifest(config.name);
        manifest.imported = {
            from: "zjunlp/AutoAct",
            files: [options.trajectories, options.instruct, ...Object.values(options.samples ?? {})].filter((f): f is string => f != null).map((f) => path.resolve(f)),
            tables: written
        };
        runDir.writeManifest(manifest);
        return written;
    });
    const count = (agent: string) => samples.filter((s) => s.agent === agent).length;
    return {
        tasks: tasks.length, trajectories: trajectories.length, correct, tools, written,
        samples: { plan: count("plan"), tool: count("tool"), reflect: count("reflect") }
    };
}

export interface ParsedScratchpad {
    /** Tools the header lists, in its order, by this library's names (Finish and Reflect left out). */
    tools: string[];
    steps: EpisodeStep[];
    /** The answer the episode ended with, as our protocol reads it; null when it never finished. */
    finalAnswer: string | null;
}

/**
 * Reads an original scratchpad: the header's numbered tools, then after `Question:` the
 * Thought / Action / Observation lines (an observation may run over several lines).
 */
export async function parseScratchpad(prompt: string, where = "prompt"): Promise<ParsedScratchpad> {
    const at = prompt.search(/\nQuestion:/);
    if (at < 0)
        throw new InputError(`${where}: the prompt has no "Question:" line`);
    const header = prompt.slice(0, at);
    const tools: string[] = [];
    for (const match of header.matchAll(/^\(\d+\)\s*([A-Za-z][A-Za-z0-9_]*)\[/gm)) {
        const name = canonicalTool(match[1]!);
        if (!["finish", "reflect"].includes(name.toLowerCase()) && !tools.includes(name))
            tools.push(name);
    }
    const body = prompt.slice(at + 1).split("\n").slice(1);
    const raw: { thought: string; action: string; observation: string[] }[] = [];
    let field: "thought" | "action" | "observation" | null = null;
    for (const line of body) {
        const match = /^(Thought|Action|Observation)(?:\s*\d+)?:\s?(.*)$/.exec(line);
        if (match == null) {
            if (field === "observation" && line.trim() !== "")
                raw.at(-1)!.observation.push(line.trim());
            continue;
        }
        const [, label, text] = match;
        if (label === "Thought") {
            raw.push({ thought: text!.trim(), action: "", observation: [] });
            field = "thought";
        } else if (raw.length > 0) {
            field = label === "Action" ? "action" : "observation";
            if (field === "action")
                raw.at(-1)!.action = text!.trim();
            else
                raw.at(-1)!.observation.push(text!.trim());
        }
    }
    // The steps replayed through this project's episode rules (episode.ts), the protocol's
    // observations in its words: the sub-agents are asked with these. Tools answer with the
    // original's own observations; its agents' runs of invalid actions are kept whole.
    let recorded = "";
    const queue = [...raw];
    const policy: StepPolicy = {
        next: async () => {
            const step = queue.shift()!;
            const action = parseAction(step.action);
            recorded = decodeEntities(step.observation.join(" "));
            // The thoughts name tools too ("let's use BingSearch"): in this library's names as well.
            return {
                thought: cleanThought(renameTools(step.thought)), action: action == null ? "" : canonicalTool(action.name),
                argument: action?.argument ?? "", promptTokens: 0, generatedTokens: 0, maxPromptTokens: 0
            };
        }
    };
    const recordedTools: ToolRunner = {
        names: libraryTools(),
        resolve: (name) => libraryTools().find((tool) => tool === name) ?? null,
        run: async () => recorded
    };
    const result = await runEpisode({
        header: "", question: "", policy, tools: recordedTools, session: new ToolSession(),
        maxSteps: raw.length, maxContext: Number.POSITIVE_INFINITY, reserveTokens: 0, maxInvalidInRow: Number.POSITIVE_INFINITY
    });
    const steps: EpisodeStep[] = result.steps.map(({ index: _index, ...step }) => step);
    return { tools, steps, finalAnswer: result.stopReason === "finished" ? result.finalAnswer : null };
}

function canonicalTool(name: string): string {
    const alias = toolAliases[toolNameKey(name)];
    if (alias != null)
        return alias;
    const tool = libraryTools().find((t) => toolNameKey(t) === toolNameKey(name));
    return tool ?? name;
}

let toolNames: string[] | null = null;
function libraryTools(): string[] {
    if (toolNames == null) {
        const library = createToolLibrary();
        toolNames = library.tools.map((tool) => tool.name);
        library.close();
    }
    return toolNames;
}

/** The original's tool names in sample text, written as this library's. */
function renameTools(text: string): string {
    return text.replace(/\bBing[Ss]earch\b/g, "Search").replace(/\bImageCaptioner\b/g, "Image2Text");
}

function sampleKind(agent: "plan" | "tool" | "reflect", output: string): string {
    if (agent === "tool")
        return "argument";
    if (agent === "reflect")
        return /^Reflect\[/.test(output.trim()) ? "verdict" : "reflection";
    return /^[A-Za-z][A-Za-z0-9_]*$/.test(output.trim()) ? "action" : "thought";
}

function decodeEntities(text: string): string {
    return text.replace(/&#39;/g, "'").replace(/&quot;/g, "\"").replace(/&amp;/g, "&").replace(/&lt;/g, "<").replace(/&gt;/g, ">");
}

function taskRow(id: string, question: string, answer: string, image?: { caption: string; ocr: string }): TaskRow {
    return {
        id, question, answer, source: "generated", round: 0, choices: null, level: null, passages: [],
        meta: image == null ? null : JSON.stringify({ image })
    };
}

function toolRows(selected: string[], library: string[]): ToolRow[] {
    const names = [...library, ...selected.filter((name) => !library.includes(name))];
    return names.map((name) => {
        const rank = selected.indexOf(name);
        return {
            name, selected: rank >= 0, rank: rank >= 0 ? rank + 1 : null,
            reason: rank >= 0 ? "imported: the original's trajectories use it" : "", fallback: false, raw: ""
        };
    });
}
