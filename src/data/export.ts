import fs from "node:fs";
import path from "node:path";
import { InputError } from "../util/errors.js";
import { makeDirectory, releaseTemporary, temporaryNameFor } from "../util/fs.js";
import { toJson } from "./convert.js";
import { agentNames } from "./schemas.js";
import { iterateAnyTable, readTableInfo } from "./table-io.js";

/**
 * Shapes other trainers read, made from a samples table:
 * - alpaca:   `{"instruction": input, "input": "", "output": output}`
 * - sharegpt: `{"conversations": [{"from": "human", "value": input}, {"from": "gpt", "value": output}]}`
 * Each sub-agent is trained on its own data, so shaped exports hold one agent each:
 * either the one `agent` names, or one file per agent (see `exportJsonl`). A `.json` path
 * gets one JSON array (the trainers json.load their data), any other JSON Lines.
 */
export type ExportShape = "alpaca" | "sharegpt";
export const exportShapes: readonly ExportShape[] = ["alpaca", "sharegpt"];

export function shapeSample(row: Record<string, unknown>, shape: ExportShape): Record<string, unknown> {
    const input = String(row.input ?? "");
    const output = String(row.output ?? "");
    if (shape === "alpaca")
        return { instruction: input, input: "", output };
    return { conversations: [{ from: "human", value: input }, { from: "gpt", value: output }] };
}

/**
 * Checks that `--shape` or `--agent` applies (a samples table) and that `agent`, when given,
 * is known; `option` is the one the user gave, for the message.
 */
export async function checkShapeable(filePath: string, agent: string | undefined, option: "--shape" | "--agent" = "--shape"): Promise<void> {
    const info = await readTableInfo(filePath);
    const names = new Set(info.fields.map((f) => f.name));
    if (info.schemaName !== "samples" && !(names.has("agent") && names.has("input") && names.has("output")))
        throw new InputError(`${option} needs a samples table; ${filePath} holds ${info.schemaName == null ? "a foreign table" : `the table "${info.schemaName}"`}`);
    if (agent != null && !(agentNames as readonly string[]).includes(agent))
        throw new InputError(`--agent must be one of ${agentNames.join(", ")}; got "${agent}"`);
}

export interface ExportJsonlOptions {
    /** The Arrow file to read. */
    input: string;
    /**
     * The file to write (atomically): JSON Lines, or one JSON array when it ends in `.json`
     * (what FastChat's and Stanford Alpaca's trainers json.load). With a shape and no agent:
     * one file per agent, see below.
     */
    output: string;
    /** Rewrite sample rows as alpaca or ShareGPT records. Defaults to the rows as they are. */
    shape?: ExportShape;
    /** Keep only this agent's rows (samples tables). Defaults to all agents. */
    agent?: string;
}

export interface ExportJsonlResult {
    /** Files written, with their row counts. */
    files: { path: string; rows: number; agent?: string }[];
}

/** One file being exported: rows go to a temporary name, renamed when complete. */
interface ExportFile {
    path: string;
    tmp: string;
    fd: number;
    rows: number;
    agent?: string;
    /** A JSON array (`.json`) rather than JSON Lines. */
    array: boolean;
}

/**
 * Writes every row of an Arrow table as JSON, one object per line, or as one JSON array
 * for a `.json` path (nested lists and structs as JSON, int64 as numbers). With `shape` and
 * without `agent`, writes one file per agent, named by inserting the agent before the
 * extension: `out.jsonl` -> `out.plan.jsonl`, `out.tool.jsonl`, `out.reflect.jsonl`. Every
 * agent gets its file, empty when it has no rows, so no earlier export's file is left to
 * pass for this one's. Every file is written to a temporary name and renamed when complete.
 */
export async function exportJsonl(options: ExportJsonlOptions): Promise<ExportJsonlResult> {
    if (options.shape != null)
        await checkShapeable(options.input, options.agent);
    const perAgent = options.shape != null && options.agent == null;
    checkExportTarget(options.output, options.input, perAgent);
    const outputs = new Map<string, ExportFile>();
    const outputFor = (agent: string | undefined) => {
        const key = perAgent ? agent ?? "" : "";
        let out = outputs.get(key);
        if (out == null) {
            const target = perAgent ? withAgentSuffix(options.output, key) : options.output;
            makeDirectory(path.dirname(path.resolve(target)));
            const tmp = temporaryNameFor(target);
            out = { path: target, tmp, fd: fs.openSync(tmp, "wx"), rows: 0, agent: perAgent ? key : options.agent, array: isJsonArrayPath(target) };
            if (out.array)
                fs.writeSync(out.fd, "[");
            outputs.set(key, out);
        }
        return out;
    };
    try {
        // An empty table or agent still gives an (empty) file.
        for (const agent of perAgent ? agentNames : [undefined])
            outputFor(agent);
        for await (const rows of iterateAnyTable(options.input)) {
            for (const row of rows) {
                const agent = row.agent == null ? undefined : String(row.agent);
                if (options.agent != null && agent !== options.agent)
                    continue;
                const out = outputFor(agent);
                const json = toJson(options.shape == null ? row : shapeSample(row, options.shape));
                fs.writeSync(out.fd, out.array ? `${out.rows === 0 ? "\n" : ",\n"}${json}` : `${json}\n`);
                out.rows++;
            }
        }
        for (const out of outputs.values()) {
            if (out.array)
                fs.writeSync(out.fd, out.rows === 0 ? "]\n" : "\n]\n");
            fs.closeSync(out.fd);
            fs.renameSync(out.tmp, out.path);
            releaseTemporary(out.tmp);
        }
    } catch (error) {
        for (const out of outputs.values()) {
            try {
                fs.closeSync(out.fd);
            } catch {
                // closed already
            }
            fs.rmSync(out.tmp, { force: true });
            releaseTemporary(out.tmp);
        }
        throw error;
    }
    return { files: [...outputs.values()].map(({ path: p, rows, agent }) => ({ path: p, rows, ...(agent != null ? { agent } : {}) })) };
}

/** `.json`: one JSON array; anything else: JSON Lines. */
function isJsonArrayPath(filePath: string): boolean {
    return path.extname(filePath).toLowerCase() === ".json";
}

/**
 * Makes the export's folder and refuses, with one line each, a target that is a folder, an
 * Arrow file (an export never replaces a table) or the input itself; `perAgent` checks the
 * per-agent files the export will write.
 */
export function checkExportTarget(target: string, input: string, perAgent = false): void {
    makeDirectory(path.dirname(path.resolve(target)), "folder");
    if (path.extname(target).toLowerCase() === ".arrow")
        throw new InputError(`--export ${target}: an .arrow name would replace a table with JSON; name a .jsonl or .json file`);
    const inputStat = statOrNull(input);
    for (const file of perAgent ? agentNames.map((agent) => withAgentSuffix(target, agent)) : [target]) {
        const stat = statOrNull(file);
        if (stat?.isDirectory())
            throw new InputError(`--export ${file}: is a folder; name a file`);
        if (stat != null && inputStat != null && stat.dev === inputStat.dev && stat.ino === inputStat.ino)
            throw new InputError(`--export ${file}: is the input table ${input}; name another file`);
    }
}

function statOrNull(file: string): fs.Stats | null {
    try {
        return fs.statSync(file);
    } catch {
        return null; // not there yet: it will be created
    }
}

/** `out.jsonl` + `plan` -> `out.plan.jsonl`; without an extension, `out` -> `out.plan.jsonl`. */
export function withAgentSuffix(filePath: string, agent: string): string {
    const ext = path.extname(filePath);
    const base = ext === "" ? filePath : filePath.slice(0, -ext.length);
    return `${base}.${agent}${ext === "" ? ".jsonl" : ext}`;
}
