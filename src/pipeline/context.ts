import type { PipelineConfig, StageName } from "./config-schema.js";
import type { DataLocator } from "./data-locator.js";
import type { ModelSession } from "./model-session.js";
import type { RunDir } from "./run-dir.js";
import type { ProgressReporter } from "../util/progress.js";

/** What every stage gets: the resolved config, the run directory, data, the model. */
export interface StageContext {
    /** The config, its file paths absolute. */
    config: PipelineConfig;
    runDir: RunDir;
    /** --limit N: caps every stage's item count for a quick trial run; null = no cap. */
    limit: number | null;
    /** --force: the stage also remakes what it keeps by its own keys (trained adapters). */
    force?: boolean;
    data: DataLocator;
    model: ModelSession;
    progress: ProgressReporter;
    /** Status lines for humans (stderr). */
    log: (line: string) => void;
}

/** The figures a stage reports; they go to the manifest and the report. */
export type StageStats = Record<string, number | string | boolean>;

export interface StageResult {
    /** Output tables (file names in the run dir) with their row counts. */
    outputs: Record<string, number>;
    stats: StageStats;
}

/**
 * What a stage reads, declared once: the runner derives the stage's input hash (and so
 * "up to date"), the producer of a missing table, and resume from it.
 */
export interface StageReads {
    /**
     * Dotted config keys (a whole section such as "synth", one value such as "model.parallel",
     * or one field of every element: "data.eval[].file"); a function when the config decides.
     */
    config: readonly string[] | ((context: StageContext) => readonly string[]);
    /** Run-directory tables (or other run-directory files) it reads; a function when the config decides. */
    tables: readonly string[] | ((context: StageContext) => readonly string[]);
    /** Files it reads outside its tables, by role (e.g. agent -> adapter), hashed by content. */
    files?: (context: StageContext) => Record<string, string>;
    /**
     * Data files it reads (seeds, evaluation sets, corpus sources), by role, found as the
     * stage finds them (data folders, cache, download; `src/pipeline/data-inputs.ts`) and
     * hashed by content: editing a seed or an eval file makes the stage stale.
     */
    data?: (context: StageContext) => Promise<Record<string, string>>;
    /** Whether it reads the model (its hash goes into the input hash). */
    model: boolean;
    /** Whether --limit changes what it does. */
    limit: boolean;
}

/**
 * The config keys that "reads the model" adds to the GGUF's hash: which engine decodes and
 * which served model answers. Endpoints, timeouts and retries are not inputs: adding a
 * server to a run keeps its finished batches.
 */
export const modelIdentityKeys = ["model.backend", "model.served_name"] as const;

/** What a stage writes into the run directory. */
export interface StageWrites {
    /** Run-directory files it may write (a missing input names the stage that writes it). */
    files: (context: StageContext) => string[];
    /**
     * Outputs the stage keeps and checks itself when its inputs change (trained adapters
     * and their checkpoints, keyed by their own input hash); other stale outputs are removed
     * before the stage reruns.
     */
    resumable?: boolean;
}

export interface StageDefinition {
    name: StageName;
    /** One line for `--help` and the report. */
    description: string;
    reads: StageReads;
    writes: StageWrites;
    /**
     * What refuses the stage before anything of the run is touched (its outputs put aside, a
     * corpus made); `selected` are the stages this command runs (earlier ones run first).
     */
    check?(context: StageContext, selected: readonly StageName[]): void;
    run(context: StageContext, inputHash: string): Promise<StageResult>;
}

/** The config keys a stage reads in this run. */
export function configRead(reads: StageReads, context: StageContext): readonly string[] {
    return typeof reads.config === "function" ? reads.config(context) : reads.config;
}

/** The run-directory tables a stage reads in this run. */
export function tablesRead(reads: StageReads, context: StageContext): readonly string[] {
    return typeof reads.tables === "function" ? reads.tables(context) : reads.tables;
}

/** Applies --limit to a count from the config (0 = unlimited stays unlimited unless limited). */
export function limited(count: number, limit: number | null): number {
    if (limit == null)
        return count;
    return count === 0 ? limit : Math.min(count, limit);
}
