import fs from "node:fs";
import path from "node:path";
import { InputError, errorMessage } from "../util/errors.js";
import { requireFile, writeFileAtomicSync } from "../util/fs.js";
import { createProgress, type ProgressReporter } from "../util/progress.js";
import { cachedSha256 } from "../util/file-hash.js";
import { realModelPreset, realModelSource } from "../gguf/presets.js";
import { resolveModelSource, isRemoteSource } from "../llm/model-source.js";
import { checkAdapterFitsBase, checkGgufFile } from "../llm/gguf-check.js";
import { stageNames, type PipelineConfig, type StageName } from "./config-schema.js";
import { configToYaml, isModelFilePath, loadConfig } from "./config.js";
import { configRead, modelIdentityKeys, tablesRead, type StageContext, type StageDefinition } from "./context.js";
import { DataLocator } from "./data-locator.js";
import { ModelSession } from "./model-session.js";
import { withRunLock } from "./run-lock.js";
import { RunDir, hashFileSync, hashValues, type StageRecord } from "./run-dir.js";
import { instructStage } from "./stages/instruct.js";
import { selectToolsStage } from "./stages/select-tools.js";
import { synthStage } from "./stages/synth.js";
import { filterStage } from "./stages/filter.js";
import { splitStage } from "./stages/split.js";
import { trainStage } from "./stages/train.js";
import { createEvalStage, type SubAgentAdapters } from "./stages/eval.js";
import { writeReport } from "./report.js";
import { ensureRunCorpus } from "./corpus.js";

export interface RunPipelineOptions {
    /** The pipeline YAML file. */
    configFile: string;
    /** --model: a GGUF path, an `hf:` URI or a preset name; overrides `model.path`. */
    model?: string;
    /** Defaults to runs/<pipeline name>. */
    runDir?: string;
    /** Run only the stages from this one on. */
    from?: StageName;
    /** Run only the stages up to this one. */
    until?: StageName;
    /** Stages not to run. */
    skip?: StageName[];
    /** Exactly these stages (the per-stage commands). */
    only?: StageName[];
    /** --limit N: caps every stage's item count; 0 lifts a limit the run was made with. */
    limit?: number;
    /**
     * The command continues a run from its directory (a stage command on <run-dir>/config.yaml):
     * without --limit it keeps the limit the run was made with.
     */
    continueRun?: boolean;
    /** --set KEY=VALUE overrides. */
    set?: string[];
    /** --data DIR: folders searched first for data files. */
    dataDirs?: string[];
    /** Adapters for evaluation instead of the run directory's. */
    adapters?: SubAgentAdapters;
    /** Rerun the selected stages even when their inputs are unchanged. Defaults to false. */
    force?: boolean;
    progress?: ProgressReporter;
    log?: (line: string) => void;
}

export interface StageOutcome {
    stage: StageName;
    status: "ran" | "up-to-date" | "skipped";
    seconds: number;
    record?: StageRecord;
}

export interface RunPipelineResult {
    runDir: string;
    stages: StageOutcome[];
    report: string;
}

/** Whether a stage reads the retrieval corpus: grounded self-instruct, and the tools of synth and eval. */
function readsCorpus(stage: StageName, config: PipelineConfig): boolean {
    return stage === "synth" || stage === "eval" || (stage === "instruct" && config.instruct.mode === "grounded");
}

export const stageDefinitions = (adapters?: SubAgentAdapters): Record<StageName, StageDefinition> => ({
    instruct: instructStage,
    "select-tools": selectToolsStage,
    synth: synthStage,
    filter: filterStage,
    split: splitStage,
    train: trainStage,
    eval: createEvalStage(adapters)
});

/**
 * Runs a pipeline's stages in order. A stage whose inputs (config section, input tables,
 * model, limit) are unchanged since it last finished is skipped; a stage that was killed
 * continues from its last finished batch.
 */
export async function runPipeline(options: RunPipelineOptions): Promise<RunPipelineResult> {
    const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    const loaded = loadConfig(options.configFile, { set: options.set });
    const config = loaded.config;
    if (options.model != null)
        config.model.path = isModelFilePath(options.model) ? path.resolve(options.model) : options.model;
    if (options.limit != null && (!Number.isInteger(options.limit) || options.limit < 0))
        throw new InputError(`--limit must be a whole number (0 = no limit), got ${options.limit}`);
    for (const dir of options.dataDirs ?? []) {
        if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory())
            throw new InputError(`--data ${dir}: no such folder`);
    }
    const selected = selectStages(options);
    const modelSource = modelSourceFor(config);
    // Everything that can reject the run is checked before the run directory is touched.
    const needsModel = selected.some((stage) => stageDefinitions()[stage].reads.model);
    const modelPath = needsModel ? await resolveModelSource(modelSource) : null;
    if (modelPath != null)
        await checkGgufFile(modelPath);

    const runDir = new RunDir(options.runDir ?? path.join("runs", config.name));
    return withRunLock(runDir, () => runStages({ options, config, selected, modelSource, modelPath, runDir, log }));
}

/** A run that passed every check: its config, stages, model and (locked) run directory. */
interface CheckedRun {
    options: RunPipelineOptions;
    config: PipelineConfig;
    selected: StageName[];
    modelSource: string;
    modelPath: string | null;
    runDir: RunDir;
    log: (line: string) => void;
}

async function runStages({ options, config, selected, modelSource, modelPath, runDir, log }: CheckedRun): Promise<RunPipelineResult> {
    // The saved config stands on its own (its paths are absolute): the per-stage commands run from
    // it alone, finding the data where this command did (--data joins data.search).
    config.model.path = modelSource;
    config.data.search = [...new Set([...(options.dataDirs ?? []).map((dir) => path.resolve(dir)), ...config.data.search])];
    writeFileAtomicSync(runDir.configFile, configToYaml(config));

    const manifest = runDir.readManifest(config.name);
    // --limit is the run's, as --data is: `autoact run` sets it, a stage command without --limit
    // keeps it (a stage command's own --limit is for that command only)
    const limit = options.limit === undefined && options.continueRun === true ? manifest.limit ?? null : options.limit || null;
    if (options.limit === undefined && limit != null)
        log(`--limit ${limit}: the run's limit (--limit 0 lifts it)`);
    if (modelPath != null) {
        manifest.model = { source: modelSource, path: modelPath, sha256: await cachedSha256(modelPath), bytes: fs.statSync(modelPath).size };
        runDir.writeManifest(manifest);
    }
    const session = new ModelSession(modelPath ?? "", config.model);
    const context: StageContext = {
        config,
        runDir,
        limit,
        force: options.force ?? false,
        data: new DataLocator({
            searchDirs: config.data.search,
            descriptor: config.data.descriptor
        }),
        model: session,
        progress: options.progress ?? createProgress(),
        log
    };
    const definitions = stageDefinitions(options.adapters);
    const outcomes: StageOutcome[] = [];
    try {
        checkEarlierTables(selected, context);
        checkImportedTables(selected, context, options.force ?? false);
        for (const stage of selected)
            definitions[stage].check?.(context, selected);
        // A corpus that holds the eval set is refused before any model time is spent.
        if (config.data.corpus.length > 0 && selected.some((stage) => readsCorpus(stage, config)))
            await ensureRunCorpus(context);
        if (options.continueRun !== true)
            runDir.updateManifest((saved) => ({ ...saved, limit }));
        for (const stage of stageNames) {
            if (!selected.includes(stage)) {
                outcomes.push({ stage, status: "skipped", seconds: 0 });
                continue;
            }
            outcomes.push(await runStage(definitions[stage], context, manifest.model?.sha256 ?? "", options.force ?? false));
        }
    } finally {
        await session.dispose();
    }
    const report = await writeReport(runDir, config);
    return { runDir: runDir.dir, stages: outcomes, report };
}

/**
 * The hash of everything a stage reads, from its declaration: the declared config values,
 * the run-directory tables, outside files and data files (by content), the model's hash and --limit.
 * A missing table names the stage that writes it.
 */
export async function stageInputHash(stage: StageDefinition, context: StageContext, modelHash: string): Promise<string> {
    const { runDir } = context;
    const reads = stage.reads;
    const tableHashes = tablesRead(reads, context).map((name) => {
        const file = runDir.file(name);
        if (!fs.existsSync(file))
            throw missingTable(stage.name, name, context);
        return [name, hashFileSync(file)];
    });
    const fileHashes = Object.entries(reads.files?.(context) ?? {}).sort(([a], [b]) => (a < b ? -1 : 1)).map(([role, file]) => {
        requireFile(file, `stage ${stage.name}'s ${role} input`);
        return [role, hashFileSync(file)];
    });
    const dataHashes: [string, string][] = [];
    for (const [role, file] of Object.entries(await reads.data?.(context) ?? {}).sort(([a], [b]) => (a < b ? -1 : 1)))
        dataHashes.push([role, await cachedSha256(file)]);
    const configValues = Object.fromEntries(configRead(reads, context).map((key) => [key, configValue(context.config, key)]));
    const model = reads.model ? [modelHash, ...modelIdentityKeys.map((key) => configValue(context.config, key))] : null;
    return hashValues(stage.name, configValues, tableHashes, fileHashes, dataHashes, model, reads.limit ? context.limit : null);
}

/**
 * The value at a dotted config key (`list[].field`: that field of every element, as a list); a
 * key the config does not have is a bug in a declaration.
 */
export function configValue(config: PipelineConfig, key: string): unknown {
    const at = (value: unknown, parts: string[]): unknown => {
        let cursor = value;
        for (const [i, part] of parts.entries()) {
            const name = part.replace(/\[\]$/, "");
            if (cursor == null || typeof cursor !== "object" || !Object.hasOwn(cursor, name))
                throw new Error(`stage declaration names an unknown config key "${key}"`);
            cursor = (cursor as Record<string, unknown>)[name];
            if (name !== part) {
                if (!Array.isArray(cursor))
                    throw new Error(`stage declaration: "${name}" in "${key}" is no list`);
                return cursor.map((element) => at(element, parts.slice(i + 1)));
            }
        }
        return cursor;
    };
    return at(config, key.split("."));
}

function missingTable(stage: StageName, name: string, context: StageContext): InputError {
    const producer = producerOf(name, context);
    return new InputError(`stage ${stage} needs ${context.runDir.file(name)}${producer ? `; run the ${producer} stage first` : ""}`);
}

/**
 * The tables the selected stages read that no selected stage writes before them must be in the
 * run directory already: checked before any work (the corpus, a download) is started.
 */
function checkEarlierTables(selected: readonly StageName[], context: StageContext): void {
    const definitions = stageDefinitions();
    const written = new Set<string>();
    for (const stage of stageNames.filter((name) => selected.includes(name))) {
        for (const name of tablesRead(definitions[stage].reads, context)) {
            if (!written.has(name) && !context.runDir.exists(name))
                throw missingTable(stage, name, context);
        }
        for (const name of definitions[stage].writes.files(context))
            written.add(name);
    }
}

/**
 * Tables `autoact import` wrote are made by no stage here: a stage that would write one over
 * them (it has never run in this directory) is refused unless --force says to replace them.
 */
function checkImportedTables(selected: readonly StageName[], context: StageContext, force: boolean): void {
    const manifest = context.runDir.readManifest();
    const imported = manifest.imported?.tables ?? [];
    const definitions = stageDefinitions();
    for (const stage of selected) {
        const overwritten = definitions[stage].writes.files(context).filter((name) => imported.includes(name));
        if (overwritten.length === 0 || manifest.stages[stage] != null)
            continue;
        if (!force) {
            const after = stageNames.find((name) => stageNames.indexOf(name) > stageNames.indexOf(stage) && !definitions[name].writes.files(context).some((f) => imported.includes(f)));
            throw new InputError(`${overwritten.join(", ")} in ${context.runDir.dir} ${overwritten.length > 1 ? "were" : "was"} imported by autoact import; the ${stage} stage would replace ${overwritten.length > 1 ? "them" : "it"}: ` +
                `run the stages after the imported tables${after ? ` (--from ${after})` : ""}, or give --force to replace ${overwritten.length > 1 ? "them" : "it"}`);
        }
    }
}

/** The stage that declares it writes a run-directory file. */
export function producerOf(file: string, context: StageContext): StageName | null {
    const definitions = stageDefinitions();
    return stageNames.find((stage) => definitions[stage].writes.files(context).includes(file)) ?? null;
}

async function runStage(stage: StageDefinition, context: StageContext, modelHash: string, force: boolean): Promise<StageOutcome> {
    const { runDir } = context;
    // Adapters are checked against the model before llama.cpp sees them (it aborts on a misfit),
    // and before data files are looked for (a missing one may start a download).
    for (const file of Object.values(stage.reads.files?.(context) ?? {})) {
        if (file.endsWith(".gguf") && context.model.modelPath !== "")
            checkAdapterFitsBase(file, context.model.modelPath);
    }
    const inputHash = await stageInputHash(stage, context, modelHash);
    const previous = runDir.readManifest().stages[stage.name];
    const outputsPresent = previous != null && Object.keys(previous.outputs).every((name) => runDir.exists(name));
    if (!force && previous?.status === "done" && previous.inputHash === inputHash && outputsPresent) {
        context.log(`${stage.name}: up to date`);
        return { stage: stage.name, status: "up-to-date", seconds: 0, record: previous };
    }
    if (previous != null && previous.inputHash !== inputHash) {
        // Stale: its part files go; its outputs (unless the stage checks its own) go aside when
        // finished, else away, and the outputs put aside for these very inputs come back.
        runDir.clearParts(stage.name);
        if (!stage.writes.resumable) {
            if (!force && runDir.asideRecord(stage.name)?.inputHash === inputHash) {
                const record = runDir.takeBack(stage.name, previous)!;
                context.log(`${stage.name}: up to date (its outputs for these inputs, put aside by an earlier run, are back)`);
                return { stage: stage.name, status: "up-to-date", seconds: 0, record };
            }
            if (previous.status === "done" && outputsPresent)
                runDir.putAside(stage.name, previous);
            for (const name of new Set([...stage.writes.files(context), ...Object.keys(previous.outputs)]))
                fs.rmSync(runDir.file(name), { force: true });
        }
    }
    const startedAt = new Date().toISOString();
    const started = performance.now();
    runDir.updateStage(stage.name, () => ({ status: "running", inputHash, outputs: {}, startedAt }));
    context.log(`${stage.name}: ${stage.description}`);
    try {
        const result = await stage.run(context, inputHash);
        const seconds = (performance.now() - started) / 1000;
        const record = runDir.updateStage(stage.name, () => ({
            status: "done",
            inputHash,
            outputs: Object.fromEntries(Object.entries(result.outputs).map(([name, rows]) => [name, { rows, sha256: hashFileSync(runDir.file(name)) }])),
            startedAt,
            finishedAt: new Date().toISOString(),
            seconds,
            stats: result.stats
        }));
        // a table it wrote is no longer the imported one
        runDir.updateManifest((manifest) => {
            if (manifest.imported != null)
                manifest.imported.tables = manifest.imported.tables.filter((name) => !(name in result.outputs));
            return manifest;
        });
        const written = Object.entries(result.outputs).map(([n, r]) => `${n}: ${r} rows`).join(", ");
        context.log(`${stage.name}: done in ${seconds.toFixed(1)}s${written === "" ? ", nothing written" : ` (${written})`}`);
        return { stage: stage.name, status: "ran", seconds, record };
    } catch (error) {
        runDir.updateStage(stage.name, (record) => ({
            ...(record ?? { inputHash, outputs: {}, startedAt }),
            status: "failed",
            finishedAt: new Date().toISOString(),
            seconds: (performance.now() - started) / 1000,
            error: errorMessage(error)
        }));
        throw error;
    }
}

function selectStages(options: RunPipelineOptions): StageName[] {
    const check = (name: string, flag: string): StageName => {
        if (!(stageNames as readonly string[]).includes(name))
            throw new InputError(`${flag} ${name}: unknown stage (stages: ${stageNames.join(", ")})`);
        return name as StageName;
    };
    if (options.only != null)
        return options.only.map((name) => check(name, "stage"));
    const from = options.from == null ? 0 : stageNames.indexOf(check(options.from, "--from"));
    const until = options.until == null ? stageNames.length - 1 : stageNames.indexOf(check(options.until, "--until"));
    if (from > until)
        throw new InputError(`--from ${options.from} comes after --until ${options.until}`);
    const skip = new Set((options.skip ?? []).map((name) => check(name, "--skip")));
    return stageNames.slice(from, until + 1).filter((stage) => !skip.has(stage));
}

/** `model.path` as a source: a preset's, or the value itself (an `hf:` URI, or a file made absolute when the config was read). */
function modelSourceFor(config: PipelineConfig): string {
    const value = config.model.path;
    if (isModelFilePath(value) || isRemoteSource(value))
        return value;
    return realModelSource(realModelPreset(value === "default" ? undefined : value));
}
