import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { InputError } from "../util/errors.js";
import { packageRoot } from "../util/package.js";
import { downloadFile } from "../util/download.js";
import { readDatasetDescriptor, type DatasetDescriptor } from "../data/datasets/index.js";

/**
 * Finds a pipeline's data files: `--data DIR` first, then the config's `data.search`
 * folders (relative to the config file), then the download cache; a file that is nowhere
 * is downloaded into the cache when the dataset descriptor (datasets/<name>.json) says
 * where from.
 */
export interface DataLocatorOptions {
    /** Folders from --data. */
    dataDirs?: string[];
    /** `data.search` of the config, already resolved to absolute paths. */
    searchDirs?: string[];
    /** Descriptor name (datasets/<name>.json); "" for none. */
    descriptor?: string;
    /** Defaults to $AUTOACT_CACHE/datasets or ~/.cache/autoact/datasets. */
    cacheDir?: string;
}

export interface DatasetFileSource {
    url: string;
    sha256?: string;
}

export class DataLocator {
    readonly dirs: string[];
    readonly cacheDir: string;
    private readonly descriptor: string;

    constructor(options: DataLocatorOptions = {}) {
        this.descriptor = options.descriptor ?? "";
        this.cacheDir = path.join(options.cacheDir ?? datasetCacheRoot(), this.descriptor || "custom");
        this.dirs = [...(options.dataDirs ?? []).map((d) => path.resolve(d)), ...(options.searchDirs ?? []), this.cacheDir];
    }

    /** The first existing copy of `name`, or null. Absolute paths are taken as they are. */
    find(name: string): string | null {
        if (path.isAbsolute(name))
            return fs.existsSync(name) ? name : null;
        for (const dir of this.dirs) {
            const candidate = path.join(dir, name);
            if (fs.existsSync(candidate))
                return candidate;
        }
        return null;
    }

    /** Finds `name`, downloading it into the cache when the descriptor knows where from. */
    async require(name: string, what = "data file"): Promise<string> {
        const found = this.find(name);
        if (found != null)
            return found;
        const source = this.descriptorSource(name);
        if (source == null)
            throw new InputError(`${what} "${name}" not found in ${this.dirs.join(", ")}`, {
                hint: "pass --data DIR with the folder that holds it, or add the folder to data.search"
            });
        return downloadFile({ url: source.url, sha256: source.sha256, file: path.join(this.cacheDir, name) });
    }

    /**
     * Seeds: the data folders first, then the seed file this project ships for the dataset
     * (datasets/seeds/) when the config names none or the dataset's own (its descriptor's
     * `seeds` file name): a file of another name that is not there is an error, not the
     * shipped seeds in its place.
     */
    async requireSeeds(name: string): Promise<string> {
        const found = name === "" ? null : this.find(name);
        if (found != null)
            return found;
        const shipped = path.join(packageRoot, "datasets", "seeds", `${this.descriptor}.json`);
        const datasetSeeds = this.descriptorInfo()?.seeds?.path;
        const standsIn = name === "" || (datasetSeeds != null && path.basename(datasetSeeds) === name);
        if (this.descriptor !== "" && standsIn && fs.existsSync(shipped))
            return shipped;
        if (name === "")
            throw new InputError('data.seeds names no seeds file: give one (a JSON list of {"Question": ..., "Answer": ...}, 2 or more) in a --data folder');
        return this.require(name, "seeds file");
    }

    /** The dataset's descriptor (datasets/<name>.json), or null without one. */
    descriptorInfo(): DatasetDescriptor | null {
        if (this.descriptor === "" || !fs.existsSync(path.join(packageRoot, "datasets", `${this.descriptor}.json`)))
            return null;
        return readDatasetDescriptor(this.descriptor);
    }

    /**
     * The official full file of the dataset (downloaded on first use), standing in for
     * split files that are not at hand; null when the descriptor names none.
     */
    async officialFile(): Promise<{ file: string; format: string } | null> {
        const official = this.descriptorInfo()?.official;
        if (official == null)
            return null;
        return { file: await this.require(official.file, "official dataset file"), format: official.format };
    }

    /**
     * A corpus source of the pipeline (`data.corpus`): a corpus the descriptor names
     * (`train-paragraphs`), found in the data folders or downloaded into the cache, or a
     * file of pages in the data folders. The format is the descriptor's, else "auto".
     */
    async requireCorpus(name: string): Promise<{ name: string; file: string; format: string }> {
        const known = this.descriptorInfo()?.corpora?.[name];
        if (known == null)
            return { name, file: await this.require(name, "corpus file"), format: "auto" };
        const found = this.find(known.file);
        const file = found ?? await downloadFile({ url: known.url, sha256: known.sha256 ?? undefined, file: path.join(this.cacheDir, known.file) });
        return { name, file, format: known.format };
    }

    private descriptorSource(name: string): DatasetFileSource | null {
        const info = this.descriptorInfo();
        const official = info?.official;
        if (official != null && official.file === name && official.url)
            return { url: official.url, sha256: official.sha256 ?? undefined };
        const corpus = Object.values(info?.corpora ?? {}).find((c) => c.file === name);
        return corpus == null ? null : { url: corpus.url, sha256: corpus.sha256 ?? undefined };
    }
}

export function datasetCacheRoot(): string {
    const base = process.env.AUTOACT_CACHE ?? path.join(os.homedir(), ".cache", "autoact");
    return path.join(base, "datasets");
}
