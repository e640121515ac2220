import fs from "node:fs";
import path from "node:path";
import { InputError } from "../util/errors.js";
import { makeDirectory, temporaryNameFor } from "../util/fs.js";
import { toJson } from "./convert.js";
import { agentNames } from "./schemas.js";
import { iterateAnyTable, readTableInfo } from "./table-io.js";

/**
 * Shapes other trainers read, made from a samples table:
 * - alpaca:   `{"instruction": input, "input": "", "output": output}`
 * - sharegpt: `{"conversations": [{"from": "human", "value": input}, {"from": "gpt", "value": output}]}`
 * Each sub-agent is trained on its own data, so shaped exports hold one agent each:
 * either the one `agent` names, or one file per agent (see `exportJsonl`).
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

/** Checks that `--shape` applies (a samples table) and that `agent`, when given, is known. */
export async function checkShapeable(filePath: string, agent: string | undefined): Promise<void> {
    const info = await readTableInfo(filePath);
    const names = new Set(info.fields.map((f) => f.name));
    if (info.schemaName !== "samples" && !(names.has("agent") && names.has("input") && names.has("output")))
        throw new InputError(`--shape needs a samples table; ${filePath} holds ${info.schemaName == null ? "a foreign table" : `the table "${info.schemaName}"`}`);
    if (agent != null && !(agentNames as readonly string[]).includes(agent))
        throw new InputError(`--agent must be one of ${agentNames.join(", ")}; got "${agent}"`);
}

export interface ExportJsonlOptions {
    /** The Arrow file to read. */
    input: string;
    /** The JSONL file to write (atomically). With a shape and no agent: one file per agent, see below. */
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

/**
 * Writes every row of an Arrow table as one JSON object per line (nested lists and
 * structs as JSON, int64 as numbers). With `shape` and without `agent`, writes one
 * file per agent present, named by inserting the agent before the extension:
 * `out.jsonl` -> `out.plan.jsonl`, `out.tool.jsonl`, `out.reflect.jsonl`.
 * Every file is written to a temporary name and renamed when complete.
 */
export async function exportJsonl(options: ExportJsonlOptions): Promise<ExportJsonlResult> {
    if (options.shape != null)
        await checkShapeable(options.input, options.agent);
    checkExportTarget(options.output);
    const perAgent = options.shape != null && options.agent == null;
    const outputs = new Map<string, { path: string; tmp: string; fd: number; rows: number; agent?: string }>();
    const outputFor = (agent: string | undefined) => {
        const key = perAgent ? agent ?? "" : "";
        let out = outputs.get(key);
        if (out == null) {
            const target = perAgent ? withAgentSuffix(options.output, key) : options.output;
            makeDirectory(path.dirname(path.resolve(target)));
            const tmp = temporaryNameFor(target);
            out = { path: target, tmp, fd: fs.openSync(tmp, "wx"), rows: 0, agent: perAgent ? key : options.agent };
            outputs.set(key, out);
        }
        return out;
    };
    try {
        if (!perAgent)
            outputFor(undefined); // an empty table still gives an (empty) file
        for await (const rows of iterateAnyTable(options.input)) {
            for (const row of rows) {
                const agent = row.agent == null ? undefined : String(row.agent);
                if (options.agent != null && agent !== options.agent)
                    continue;
                const out = outputFor(agent);
                fs.writeSync(out.fd, `${toJson(options.shape == null ? row : shapeSample(row, options.shape))}\n`);
                out.rows++;
            }
        }
        for (const out of outputs.values()) {
            fs.closeSync(out.fd);
            fs.renameSync(out.tmp, out.path);
        }
    } catch (error) {
        for (const out of outputs.values()) {
            try {
                fs.closeSync(out.fd);
            } catch {
                // closed already
            }
            fs.rmSync(out.tmp, { force: true });
        }
        throw error;
    }
    return { files: [...outputs.values()].map(({ path: p, rows, agent }) => ({ path: p, rows, ...(agent != null ? { agent } : {}) })) };
}

/** Makes the export's folder and refuses a target that is a folder, with one line each. */
export function checkExportTarget(target: string): void {
    makeDirectory(path.dirname(path.resolve(target)), "folder");
    let stat: fs.Stats | null = null;
    try {
        stat = fs.statSync(target);
    } catch {
        // not there yet: it will be created
    }
    if (stat?.isDirectory())
        throw new InputError(`--export ${target}: is a folder; name a file`);
}

/** `out.jsonl` + `plan` -> `out.plan.jsonl`; without an extension, `out` -> `out.plan.jsonl`. */
export function withAgentSuffix(filePath: string, agent: string): string {
    const ext = path.extname(filePath);
    const base = ext === "" ? filePath : filePath.slice(0, -ext.length);
    return `${base}.${agent}${ext === "" ? ".jsonl" : ext}`;
}
