import type { CommandModule } from "yargs";
import { inspectTable, inspectFormats, type InspectFormat } from "../../data/inspect.js";
import { exportShapes, type ExportShape } from "../../data/export.js";

interface InspectArgs {
    file: string;
    head?: number;
    format: InspectFormat;
    export?: string;
    shape?: ExportShape;
    agent?: string;
}

export const inspectCommand: CommandModule<object, InspectArgs> = {
    command: "inspect <file>",
    describe: "Print an Arrow table's schema, row count and rows; export it as JSONL or JSON (or alpaca / ShareGPT)",
    builder: (yargs) => yargs
        .positional("file", { type: "string", demandOption: true, describe: "An .arrow file (any Arrow IPC file or stream)" })
        .option("head", { type: "number", describe: "Rows to print (default: 10 for table, all for jsonl/json)" })
        .option("format", { choices: inspectFormats, default: "table" as InspectFormat, describe: "Output format" })
        .option("export", { type: "string", describe: "Also write every row to this file: JSON Lines, or one JSON array when it ends in .json (what FastChat and Stanford Alpaca json.load); never an .arrow file" })
        .option("shape", { choices: exportShapes, describe: "samples tables: alpaca or ShareGPT records (with --export and no --agent: one file per agent, FILE.<agent>.jsonl or .json, empty for an agent without rows)" })
        .option("agent", { type: "string", describe: "samples tables: only this agent's rows (plan | tool | reflect)" })
        .example("$0 inspect runs/x/trajectories.arrow --head 3", "schema and the first 3 rows")
        .example("$0 inspect samples.arrow --shape sharegpt --export out.jsonl", "out.plan.jsonl, out.tool.jsonl, out.reflect.jsonl") as never,
    handler: async (args) => {
        // `autoact inspect ... | head` closes the pipe early: stop quietly.
        process.stdout.on("error", (error: NodeJS.ErrnoException) => {
            if (error.code === "EPIPE")
                process.exit(0);
            throw error;
        });
        await inspectTable({
            file: args.file,
            head: args.head,
            format: args.format,
            exportTo: args.export,
            shape: args.shape,
            agent: args.agent
        });
    }
};
