import fs from "node:fs";
import path from "node:path";
import YAML, { LineCounter, isMap, isSeq, isScalar, type Node as YamlNode, type Document } from "yaml";
import { InputError, errorMessage } from "../util/errors.js";
import { loadModelPresets } from "../gguf/presets.js";
import { isRemoteSource } from "../llm/model-source.js";
import {
    configArrayElements, configChecks, configCountsAsText, configEnums, configIntegers, defaultConfig, forbiddenConfigKeys, type PipelineConfig
} from "./config-schema.js";

export interface LoadedConfig {
    /** The config, its file paths absolute (see {@link absoluteConfigPaths}). */
    config: PipelineConfig;
    /** The file it came from (absolute), or null for defaults only. */
    file: string | null;
}

export interface LoadConfigOptions {
    /** Overrides as `dotted.key=value` (the value is read as YAML: numbers, lists, booleans). */
    set?: string[];
}

/** Reads a pipeline YAML file, checks it against the schema and merges it over the defaults. */
export function loadConfig(file: string, { set = [] }: LoadConfigOptions = {}): LoadedConfig {
    let text: string;
    try {
        text = fs.readFileSync(file, "utf8");
    } catch {
        throw new InputError(`pipeline config not found: ${file}`);
    }
    const lineCounter = new LineCounter();
    const doc = YAML.parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
    if (doc.errors.length > 0) {
        const error = doc.errors[0]!;
        const line = error.linePos?.[0]?.line ?? lineCounter.linePos(error.pos[0]).line;
        throw new InputError(`${file}:${line}: malformed YAML: ${firstLine(error.message)}`);
    }
    const where = (node: YamlNode | null | undefined): string => {
        const offset = node?.range?.[0];
        return offset == null ? file : `${file}:${lineCounter.linePos(offset).line}`;
    };
    // Keys that reach Object.prototype are refused before anything is built from the document.
    let forbidden: YamlNode | null = null;
    let firstAlias: YamlNode | null = null;
    YAML.visit(doc, {
        Pair(_, pair) {
            if (forbidden == null && isScalar(pair.key) && forbiddenConfigKeys.includes(String(pair.key.value)))
                forbidden = pair.key as YamlNode;
        },
        Alias(_, alias) {
            firstAlias ??= alias as unknown as YamlNode;
        }
    });
    if (forbidden != null)
        throw new InputError(`${where(forbidden)}: the key "${String((forbidden as { value?: unknown }).value)}" is not allowed in a pipeline config`);
    let value: unknown;
    try {
        // A YAML alias bomb ("billion laughs") stops at 100 expanded aliases.
        value = doc.toJS({ maxAliasCount: 100 }) as unknown;
    } catch (error) {
        const cause = /alias/i.test(errorMessage(error)) ? "too many alias expansions (a YAML alias bomb?)" : firstLine(errorMessage(error));
        throw new InputError(`${firstAlias != null ? where(firstAlias) : file}: malformed YAML: ${cause}`);
    }
    if (value != null && !isPlainObject(value))
        throw new InputError(`${file}:1: a pipeline config must be a mapping of keys to values`);

    const config = structuredClone(defaultConfig);
    mergeChecked(config, (value ?? {}) as Record<string, unknown>, "", (keyPath) => where(nodeAt(doc, keyPath)));
    absoluteConfigPaths(config, path.dirname(path.resolve(file)));
    for (const assignment of set)
        applyOverride(config, assignment);
    absoluteConfigPaths(config, process.cwd());
    checkConsistency(config, file);
    return { config, file: path.resolve(file) };
}

/** Whether a `model.path` value names a local file (not a preset name or a remote source). */
export function isModelFilePath(value: string): boolean {
    return value !== "default" && !Object.hasOwn(loadModelPresets().real.models, value) && !isRemoteSource(value);
}

/**
 * Makes the config's file paths (`model.path` when it is a file, `data.search`) absolute
 * against `dir`: a config file's values against its folder, then `--set` values against the
 * working directory, as `--model` and `--data` are read. A loaded config holds no relative
 * path, so the copy a run saves stands on its own wherever it is read from.
 */
function absoluteConfigPaths(config: PipelineConfig, dir: string): void {
    if (isModelFilePath(config.model.path))
        config.model.path = path.resolve(dir, config.model.path);
    config.data.search = config.data.search.map((folder) => path.resolve(dir, folder));
}

/** Applies one `--set key=value` override to a config, with the same checks as the file. */
export function applyOverride(config: PipelineConfig, assignment: string): void {
    const eq = assignment.indexOf("=");
    if (eq <= 0)
        throw new InputError(`--set ${assignment}: expected KEY=VALUE, e.g. --set synth.max_steps=10`);
    const key = assignment.slice(0, eq).trim();
    const badPart = key.split(".").find((part) => forbiddenConfigKeys.includes(part));
    if (badPart != null)
        throw new InputError(`--set ${key}: the key "${badPart}" is not allowed in a pipeline config`);
    const raw = assignment.slice(eq + 1);
    let value: unknown;
    try {
        value = YAML.parse(raw);
    } catch {
        value = raw;
    }
    // `--set name=123` on a string key means the string "123".
    const current = getPath(config, key.split("."));
    if (typeof current === "string" && typeof value !== "string")
        value = raw;
    const patch: Record<string, unknown> = {};
    let cursor = patch;
    const parts = key.split(".");
    parts.forEach((part, i) => {
        if (i === parts.length - 1)
            cursor[part] = value;
        else
            cursor = (cursor[part] = {}) as Record<string, unknown>;
    });
    mergeChecked(config as unknown as Record<string, unknown>, patch, "", () => `--set ${key}`);
}

function mergeChecked(
    target: object, source: Record<string, unknown>, prefix: string, where: (keyPath: string[]) => string
): void {
    const targetRecord = target as Record<string, unknown>;
    for (const [key, value] of Object.entries(source)) {
        const keyPath = prefix === "" ? key : `${prefix}.${key}`;
        const parts = keyPath.split(".");
        if (forbiddenConfigKeys.includes(key))
            throw new InputError(`${where(parts)}: the key "${key}" is not allowed in a pipeline config`);
        if (!Object.hasOwn(targetRecord, key))
            throw new InputError(`${where(parts)}: unknown key "${keyPath}"${suggestKey(key, Object.keys(targetRecord), prefix)}`);
        const current = targetRecord[key];
        if (isPlainObject(current)) {
            if (!isPlainObject(value))
                throw new InputError(`${where(parts)}: "${keyPath}" must be a mapping`);
            mergeChecked(current, value, keyPath, where);
            continue;
        }
        targetRecord[key] = checkValue(value, current, keyPath, () => where(parts));
    }
}

function checkValue(value: unknown, template: unknown, keyPath: string, where: () => string): unknown {
    const fail = (what: string): never => {
        throw new InputError(`${where()}: "${keyPath}" ${what}`);
    };
    if (Array.isArray(template)) {
        if (!Array.isArray(value))
            fail("must be a list");
        const list = value as unknown[];
        const elementTemplate = configArrayElements[keyPath] ?? template[0] ?? inferElement(keyPath);
        const checked = list.map((element, i) => {
            const elementPath = `${keyPath}[]`;
            if (isPlainObject(elementTemplate)) {
                if (!isPlainObject(element))
                    fail(`[${i}] must be a mapping`);
                const merged = structuredClone(elementTemplate) as Record<string, unknown>;
                for (const [k, v] of Object.entries(element as Record<string, unknown>)) {
                    if (!Object.hasOwn(merged, k))
                        fail(`[${i}] has an unknown key "${k}" (known: ${Object.keys(merged).join(", ")})`);
                    merged[k] = checkValue(v, merged[k], `${elementPath}.${k}`, where);
                }
                return merged;
            }
            return checkValue(element, elementTemplate, elementPath, where);
        });
        const problem = configChecks[keyPath]?.(checked);
        if (problem != null)
            fail(problem);
        return checked;
    }
    if (typeof template === "number") {
        if (typeof value !== "number" || !Number.isFinite(value))
            fail(`must be a number, got ${describe(value)}`);
        const min = configIntegers[keyPath];
        if (min != null) {
            if (!Number.isInteger(value))
                fail(`must be a whole number, got ${String(value)}`);
            if ((value as number) < min)
                fail(`must be at least ${min}, got ${String(value)}`);
        }
    } else if (typeof template === "string") {
        if (typeof value === "number" && configCountsAsText.includes(keyPath))
            value = String(value); // "recompute: 12"
        if (typeof value !== "string")
            fail(`must be a string, got ${describe(value)}`);
    } else if (typeof template === "boolean") {
        if (typeof value !== "boolean")
            fail(`must be true or false, got ${describe(value)}`);
    }
    const allowed = configEnums[keyPath];
    if (allowed != null && !allowed.includes(value as string))
        fail(`must be one of ${allowed.join(" | ")}, got ${describe(value)}`);
    const problem = configChecks[keyPath]?.(value);
    if (problem != null)
        fail(problem);
    return value;
}

/** Empty default lists still need an element type: strings unless declared otherwise. */
function inferElement(keyPath: string): unknown {
    return keyPath === "instruct.temperature" ? 0 : "";
}

function checkConsistency(config: PipelineConfig, file: string): void {
    const [low, high] = config.instruct.temperature;
    if (config.instruct.temperature.length !== 2 || low! > high!)
        throw new InputError(`${file}: "instruct.temperature" must be [low, high] with low <= high`);
    if (config.instruct.mode === "grounded" && config.data.corpus.length === 0)
        throw new InputError(`${file}: "instruct.mode" grounded writes questions from corpus passages, but "data.corpus" names no corpus: name one (a JSONL of {title, text} pages) or use mode seeds`);
    if (config.tools.count > config.tools.library.length)
        throw new InputError(`${file}: "tools.count" (${config.tools.count}) is more than the ${config.tools.library.length} tools of "tools.library"`);
    if (config.task.kind === "multiple-choice" && config.task.metric !== "option")
        throw new InputError(`${file}: "task.metric" must be "option" for a multiple-choice task`);
    // names become file names (runs/<name>, eval-<set>.arrow): no path of their own
    const fileName = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
    if (!fileName.test(config.name))
        throw new InputError(`${file}: "name" must be a file name (letters, digits, . _ -), got ${JSON.stringify(config.name)}`);
    const names = new Set<string>();
    for (const set of config.data.eval) {
        if (set.name === "" || set.file === "")
            throw new InputError(`${file}: every "data.eval" entry needs a name and a file`);
        if (!fileName.test(set.name))
            throw new InputError(`${file}: a "data.eval" name must be a file name (letters, digits, . _ -), got ${JSON.stringify(set.name)}`);
        if (names.has(set.name))
            throw new InputError(`${file}: two "data.eval" entries are named "${set.name}"`);
        names.add(set.name);
    }
}

function nodeAt(doc: Document, keyPath: string[]): YamlNode | null {
    let node: unknown = doc.contents;
    let keyNode: YamlNode | null = null;
    for (const key of keyPath) {
        if (!isMap(node))
            return keyNode;
        const pair = node.items.find((item) => isScalar(item.key) && item.key.value === key);
        if (pair == null)
            return keyNode;
        keyNode = pair.key as YamlNode;
        node = pair.value;
    }
    return keyNode ?? (isSeq(node) || isMap(node) || isScalar(node) ? (node as YamlNode) : null);
}

function getPath(object: unknown, parts: string[]): unknown {
    let cursor = object;
    for (const part of parts) {
        if (!isPlainObject(cursor))
            return undefined;
        cursor = cursor[part];
    }
    return cursor;
}

function suggestKey(key: string, known: string[], prefix: string): string {
    const close = known.filter((k) => editDistance(k, key) <= 2);
    const inPrefix = prefix === "" ? "" : ` in "${prefix}"`;
    return close.length > 0 ? ` (did you mean "${close[0]}"?)` : ` (known keys${inPrefix}: ${known.join(", ")})`;
}

function editDistance(a: string, b: string): number {
    const row = Array.from({ length: b.length + 1 }, (_, i) => i);
    for (let i = 1; i <= a.length; i++) {
        let previous = row[0]!;
        row[0] = i;
        for (let j = 1; j <= b.length; j++) {
            const saved = row[j]!;
            row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
            previous = saved;
        }
    }
    return row[b.length]!;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
    return value != null && typeof value === "object" && !Array.isArray(value);
}

function describe(value: unknown): string {
    if (value === null)
        return "null";
    if (Array.isArray(value))
        return "a list";
    return typeof value === "string" ? `"${value}"` : `${typeof value} ${String(value)}`;
}

function firstLine(text: string): string {
    return text.split("\n")[0]!.trim();
}

/** The resolved config as YAML, saved in the run directory. */
export function configToYaml(config: PipelineConfig): string {
    return YAML.stringify(config);
}
