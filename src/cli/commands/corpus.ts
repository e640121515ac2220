import fs from "node:fs";
import type { Argv, CommandModule } from "yargs";
import { corpusFormats, importCorpus, type CorpusFormat } from "../../tools/corpus-import.js";
import { DataLocator } from "../../pipeline/data-locator.js";
import { commandGroup } from "../command-group.js";

interface ImportArgs {
    source: string;
    db: string;
    format: string;
    replace: boolean;
    data?: string[];
    "batch-size"?: number;
}

/**
 * `FILE`, or `DATASET:CORPUS` for a corpus a dataset descriptor names (hotpotqa:train-paragraphs):
 * found in --data folders or the cache, else downloaded into the cache.
 */
async function resolveSource(source: string, dataDirs: string[] | undefined): Promise<{ file: string; format?: CorpusFormat }> {
    const named = /^([a-z0-9_-]+):([a-z0-9_-]+)$/i.exec(source);
    if (named == null || fs.existsSync(source))
        return { file: source };
    const resolved = await new DataLocator({ dataDirs, descriptor: named[1] }).requireCorpus(named[2]!);
    return { file: resolved.file, format: resolved.format as CorpusFormat };
}

const importCommand: CommandModule<object, ImportArgs> = {
    command: "import <source>",
    describe: "Import pages (JSONL {title, text}), HotpotQA context paragraphs, or a corpus a dataset names (hotpotqa:train-paragraphs) into an SQLite FTS5 corpus",
    builder: (yargs) => yargs
        .positional("source", { type: "string", demandOption: true, describe: "JSONL of pages, a HotpotQA file, or DATASET:CORPUS from datasets/<name>.json (downloaded into the cache)" })
        .option("db", { type: "string", demandOption: true, describe: "Corpus database to create or add to" })
        .option("format", { type: "string", choices: corpusFormats, default: "auto", describe: "Input format (a DATASET:CORPUS source brings its own)" })
        .option("replace", { type: "boolean", default: false, describe: "Start a new database instead of adding to an existing one" })
        .option("data", { type: "string", array: true, describe: "Folder searched first for a DATASET:CORPUS file (repeatable)" })
        .option("batch-size", { type: "number", describe: "Pages per transaction (default 10000)" }) as unknown as Argv<ImportArgs>,
    handler: async (args) => {
        const source = await resolveSource(args.source, args.data);
        const tty = process.stderr.isTTY === true;
        let lastLine = 0;
        const result = await importCorpus({
            file: source.file,
            db: args.db,
            format: args.format === "auto" && source.format != null ? source.format : args.format as CorpusFormat,
            replace: args.replace,
            batchSize: args["batch-size"],
            // A live counter on a terminal; a plain line every few seconds otherwise (logs, CI).
            onProgress: ({ pages, records }) => {
                if (tty) {
                    process.stderr.write(`\r${records} records, ${pages} pages`);
                } else if (performance.now() - lastLine > 3000) {
                    lastLine = performance.now();
                    process.stderr.write(`corpus import: ${records} records, ${pages} pages\n`);
                }
            }
        });
        if (tty)
            process.stderr.write("\n");
        process.stdout.write(`${result.db}: added ${result.pagesAdded} pages (${result.joined > 0 ? `${result.joined} passages joined to their title's page; ` : ""}skipped: ${result.duplicates} duplicate titles, ${result.emptyPages} without text) from ${result.records} ${result.format} records; ` +
            `${result.totalPages} pages in all; ${result.seconds.toFixed(2)} s, ${Math.round(result.pagesPerSecond)} pages/s\n`);
    }
};

export const corpusCommand = commandGroup("corpus", "Build the offline corpus that Retrieve, Lookup and Search read", [importCommand]);
