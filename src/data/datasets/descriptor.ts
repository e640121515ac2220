import path from "node:path";
import { InputError } from "../../util/errors.js";
import { packageRoot } from "../../util/package.js";
import { readJsonFile } from "./records.js";

/** A dataset descriptor in `datasets/<name>.json` (see datasets/README.md). */
export interface DatasetDescriptor {
    name: string;
    description: string;
    license: string;
    /** Where the full official file comes from. */
    official?: { url: string; file: string; sha256: string | null; format: string; fields: Record<string, string> };
    /**
     * Retrieval corpora apart from the evaluation split, by name (`data.corpus: [name]` in a
     * pipeline): downloaded into the cache and imported by `autoact corpus import`.
     */
    corpora?: Record<string, CorpusSource>;
    /** Files of the evaluation split, by level, relative to the data directory (e.g. ../shared/datasets). */
    files?: Record<string, { path: string; sha256: string }>;
    /** Question ids of the evaluation split by level; null when the level's ids are not recorded. */
    splits?: Record<string, string[] | null>;
    /** The seed examples file, relative to the data directory. */
    seeds?: { path: string; sha256: string };
}

/** A downloadable corpus source of a descriptor. */
export interface CorpusSource {
    url: string;
    /** File name in the cache (or in a --data folder, which is looked in first). */
    file: string;
    sha256: string | null;
    /** The corpus import format that reads it (see src/tools/corpus-import.ts). */
    format: "hotpotqa" | "jsonl" | "scienceqa-problems" | "wiki-abstracts";
    note: string;
}

/** Reads `datasets/<name>.json` from the package (or a descriptor at an explicit path). */
export function readDatasetDescriptor(nameOrPath: string): DatasetDescriptor {
    const file = nameOrPath.endsWith(".json") ? nameOrPath : path.join(packageRoot, "datasets", `${nameOrPath}.json`);
    const value = readJsonFile(file, "dataset descriptor") as DatasetDescriptor;
    if (value == null || typeof value !== "object" || typeof value.name !== "string")
        throw new InputError(`${file}: key "name" must be a string`);
    return value;
}

/** The BOLAA split's question ids of one HotpotQA level, as `datasets/hotpotqa.json` records them. */
export function hotpotqaSplitIds(level: string): string[] {
    const descriptor = readDatasetDescriptor("hotpotqa");
    const ids = descriptor.splits?.[level];
    if (ids == null)
        throw new InputError(`datasets/hotpotqa.json: no question ids recorded for level "${level}" (recorded: ${Object.entries(descriptor.splits ?? {}).filter(([, v]) => v != null).map(([k]) => k).join(", ")})`);
    return ids;
}
