import type { Argv, CommandModule } from "yargs";
import { importCorpus, type CorpusFormat } from "../../tools/corpus-import.js";

interface ImportArgs {
    file: string;
    db: string;
    format: string;
    replace: boolean;
    "batch-size"?: number;
}

const importCommand: CommandModule<object, ImportArgs> = {
    command: "import <file>",
    describe: "Import pages (JSONL {title, text}) or HotpotQA context paragraphs into an SQLite FTS5 corpus",
    builder: (yargs) => yargs
        .positional("file", { type: "string", demandOption: true, describe: "JSONL of pages, or a HotpotQA file (BOLAA JSONL or official JSON)" })
        .option("db", { type: "string", demandOption: true, describe: "Corpus database to create or add to" })
        .option("format", { type: "string", choices: ["auto", "jsonl", "hotpotqa"], default: "auto", describe: "Input format" })
        .option("replace", { type: "boolean", default: false, describe: "Start a new database instead of adding to an existing one" })
        .option("batch-size", { type: "number", describe: "Pages per transaction (default 10000)" }) as unknown as Argv<ImportArgs>,
    handler: async (args) => {
        const showProgress = process.stderr.isTTY === true;
        const result = await importCorpus({
            file: args.file,
            db: args.db,
            format: args.format as CorpusFormat,
            replace: args.replace,
            batchSize: args["batch-size"],
            onProgress: showProgress ? ({ pages, records }) => process.stderr.write(`\r${records} records, ${pages} pages`) : undefined
        });
        if (showProgress)
            process.stderr.write("\n");
        process.stdout.write(`${result.db}: added ${result.pagesAdded} pages (${result.duplicates} duplicate titles skipped) from ${result.records} ${result.format} records; ` +
            `${result.totalPages} pages in all; ${result.seconds.toFixed(2)} s, ${Math.round(result.pagesPerSecond)} pages/s\n`);
    }
};

export const corpusCommand: CommandModule = {
    command: "corpus <command>",
    describe: "Build the offline corpus that Retrieve, Lookup and Search read",
    builder: (yargs) => yargs.command(importCommand).demandCommand(1),
    handler: () => {}
};
