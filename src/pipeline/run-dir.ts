import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { makeDirectory, writeFileAtomicSync } from "../util/fs.js";
import { InputError } from "../util/errors.js";
import type { StageName } from "./config-schema.js";
import type { CorpusRecord } from "./corpus.js";

/**
 * A run directory: the resolved config, a manifest that records each stage, one Arrow table
 * per stage, and part files of stages that were interrupted.
 *
 *   run/config.yaml  run/manifest.json  run/tasks.arrow ... run/report.md
 *   run/parts/<stage>/<input-hash>/batch-000001.arrow   (while a stage runs)
 *   run/previous/<stage>/record.json, its outputs        (a stage's last finished outputs,
 *                                                         put aside while other inputs run)
 */
export interface StageRecord {
    status: "running" | "done" | "failed" | "skipped";
    /** Hash of everything the stage read: its config section, input tables, model, limit. */
    inputHash: string;
    outputs: Record<string, { rows: number; sha256?: string }>;
    startedAt: string;
    finishedAt?: string;
    seconds?: number;
    /** Stage-specific figures: tokens, tokens/s, kept counts, fallbacks... */
    stats?: Record<string, number | string | boolean>;
    error?: string;
}

export interface Manifest {
    version: 1;
    pipeline: string;
    createdAt: string;
    updatedAt: string;
    model?: { source: string; path: string; sha256: string; bytes: number };
    /** The retrieval corpus: its sources with hashes, its size and its overlap with the eval sets. */
    corpus?: CorpusRecord;
    /** --limit the run was last made with (null: none); stage commands keep it. */
    limit?: number | null;
    /** Tables read from another project's files (`autoact import`) rather than made by a stage. */
    imported?: { from: string; files: string[]; tables: string[] };
    stages: Partial<Record<StageName, StageRecord>>;
}

export class RunDir {
    readonly dir: string;

    constructor(dir: string) {
        this.dir = path.resolve(dir);
    }

    file(name: string): string {
        return path.join(this.dir, name);
    }

    exists(name: string): boolean {
        return fs.existsSync(this.file(name));
    }

    /** The config the run saved (every stage command reads it unless given another). */
    get configFile(): string {
        return this.file("config.yaml");
    }

    /** The saved config, or an InputError saying this is no run directory (yet). */
    requireConfig(): string {
        if (!fs.existsSync(this.configFile))
            throw new InputError(`${this.dir} is not a run directory (no config.yaml): run a pipeline there first (autoact run PIPELINE.yaml --run-dir ${this.dir})`);
        return this.configFile;
    }

    ensure(): void {
        makeDirectory(this.dir, "run directory");
    }

    readManifest(pipeline = "unknown"): Manifest {
        const file = this.file("manifest.json");
        if (!fs.existsSync(file)) {
            const now = new Date().toISOString();
            return { version: 1, pipeline, createdAt: now, updatedAt: now, stages: {} };
        }
        let value: unknown;
        try {
            value = JSON.parse(fs.readFileSync(file, "utf8"));
        } catch (error) {
            throw new InputError(`${file}: corrupt manifest (${firstLine(error)}); move it away to start the run afresh`);
        }
        const manifest = value as Manifest;
        const isObject = (v: unknown) => v != null && typeof v === "object" && !Array.isArray(v);
        if (!isObject(value) || !isObject(manifest.stages) || manifest.version !== 1)
            throw new InputError(`${file}: not a run manifest (expected an object with version 1 and "stages"); move it away to start the run afresh`);
        for (const [stage, record] of Object.entries(manifest.stages)) {
            if (!isObject(record) || typeof record.inputHash !== "string" || !isObject(record.outputs))
                throw new InputError(`${file}: the record of stage "${stage}" is malformed; move the manifest away to start the run afresh`);
        }
        return manifest;
    }

    /** Whether any stage has started in this run directory (a fresh, rejected run may be removed). */
    hasStageRecords(): boolean {
        try {
            return Object.keys(this.readManifest().stages).length > 0;
        } catch {
            return true;
        }
    }

    writeManifest(manifest: Manifest): void {
        manifest.updatedAt = new Date().toISOString();
        writeFileAtomicSync(this.file("manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
    }

    /** Updates the manifest on disk. */
    updateManifest(update: (manifest: Manifest) => Manifest): Manifest {
        const manifest = update(this.readManifest());
        this.writeManifest(manifest);
        return manifest;
    }

    /** Updates one stage's record in the manifest on disk. */
    updateStage(stage: StageName, update: (record: StageRecord | undefined) => StageRecord, pipeline?: string): StageRecord {
        const manifest = this.readManifest(pipeline);
        const record = update(manifest.stages[stage]);
        manifest.stages[stage] = record;
        this.writeManifest(manifest);
        return record;
    }

    /**
     * Puts a finished stage's outputs aside (previous/<stage>/, replacing what was there) before
     * it runs on other inputs: a trial run, a typo or a Ctrl-C does not cost them; they come back
     * when the inputs do (takeBack).
     */
    putAside(stage: StageName, record: StageRecord): void {
        // outputs replaced since the stage wrote them (an import, a hand edit) are not its own
        if (Object.entries(record.outputs).some(([name, output]) => output.sha256 != null && hashFileSync(this.file(name)) !== output.sha256))
            return;
        const slot = this.previousDir(stage);
        fs.rmSync(slot, { recursive: true, force: true });
        for (const name of Object.keys(record.outputs)) {
            fs.mkdirSync(path.dirname(path.join(slot, name)), { recursive: true });
            fs.renameSync(this.file(name), path.join(slot, name));
        }
        writeFileAtomicSync(path.join(slot, "record.json"), JSON.stringify(record, null, 2) + "\n");
    }

    /** The record of a stage's outputs put aside, or null. */
    asideRecord(stage: StageName): StageRecord | null {
        try {
            const record = JSON.parse(fs.readFileSync(path.join(this.previousDir(stage), "record.json"), "utf8")) as StageRecord;
            return Object.keys(record.outputs).every((name) => fs.existsSync(path.join(this.previousDir(stage), name))) ? record : null;
        } catch {
            return null;
        }
    }

    /**
     * Moves the outputs put aside back into the run directory (the stage's current outputs, if
     * finished, taking their place aside) and records them; null when none were put aside.
     */
    takeBack(stage: StageName, current: StageRecord | undefined): StageRecord | null {
        const record = this.asideRecord(stage);
        if (record == null)
            return null;
        const incoming = `${this.previousDir(stage)}.back`;
        fs.rmSync(incoming, { recursive: true, force: true });
        fs.renameSync(this.previousDir(stage), incoming);
        if (current?.status === "done" && Object.keys(current.outputs).every((name) => this.exists(name)))
            this.putAside(stage, current);
        for (const name of Object.keys(record.outputs)) {
            fs.mkdirSync(path.dirname(this.file(name)), { recursive: true });
            fs.renameSync(path.join(incoming, name), this.file(name));
        }
        fs.rmSync(incoming, { recursive: true, force: true });
        this.removeEmpty(path.join(this.dir, "previous"));
        return this.updateStage(stage, () => record);
    }

    private previousDir(stage: StageName): string {
        return path.join(this.dir, "previous", stage);
    }

    private removeEmpty(dir: string): void {
        if (fs.existsSync(dir) && fs.readdirSync(dir).length === 0)
            fs.rmdirSync(dir);
    }

    /** Folder for the finished batches of a stage run with the given input hash. */
    partsDir(stage: StageName, inputHash: string): string {
        return path.join(this.dir, "parts", stage, inputHash.slice(0, 16));
    }

    /** Removes part folders of a stage (all input hashes). */
    clearParts(stage: StageName): void {
        fs.rmSync(path.join(this.dir, "parts", stage), { recursive: true, force: true });
        this.removeEmpty(path.join(this.dir, "parts"));
    }
}

function firstLine(error: unknown): string {
    return (error instanceof Error ? error.message : String(error)).split("\n")[0]!;
}

/** A stable hash of JSON-able values (object keys sorted). */
export function hashValues(...values: unknown[]): string {
    const hash = crypto.createHash("sha256");
    for (const value of values)
        hash.update(stableStringify(value)).update("\u0000");
    return hash.digest("hex");
}

export function stableStringify(value: unknown): string {
    if (value === undefined)
        return "null";
    if (value === null || typeof value !== "object")
        return JSON.stringify(value);
    if (Array.isArray(value))
        return `[${value.map(stableStringify).join(",")}]`;
    const entries = Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(",")}}`;
}

/** sha256 of a file, cached beside nothing: cheap enough for tables; models use model-hash.ts. */
export function hashFileSync(file: string): string {
    return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}
