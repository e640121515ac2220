import type { PipelineConfig, StageName } from "./config-schema.js";
import type { DataLocator } from "./data-locator.js";
import type { ModelSession } from "./model-session.js";
import type { RunDir } from "./run-dir.js";
import type { ProgressReporter } from "../util/progress.js";

/** What every stage gets: the resolved config, the run directory, data, the model. */
export interface StageContext {
    config: PipelineConfig;
    /** Folder of the config file; relative paths in it are resolved against it. */
    configDir: string;
    runDir: RunDir;
    /** --limit N: caps every stage's item count for a quick trial run; null = no cap. */
    limit: number | null;
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

export interface StageDefinition {
    name: StageName;
    /** One line for `--help` and the report. */
    description: string;
    /** Run-dir tables the stage reads (their hashes go into its input hash). */
    inputTables(context: StageContext): string[];
    /** The config values the stage depends on (they go into its input hash). */
    inputValues(context: StageContext): unknown;
    /** Whether the stage reads the model (its hash goes into the input hash). */
    usesModel: boolean;
    run(context: StageContext, inputHash: string): Promise<StageResult>;
}

/** Applies --limit to a count from the config (0 = unlimited stays unlimited unless limited). */
export function limited(count: number, limit: number | null): number {
    if (limit == null)
        return count;
    return count === 0 ? limit : Math.min(count, limit);
}
