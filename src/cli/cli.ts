import yargs from "yargs";
import { commands } from "./commands/index.js";
import { UserError, errorMessage } from "../util/errors.js";
import { fileErrorCause } from "../util/fs.js";
import { packageVersion } from "../util/package.js";

/**
 * Builds the yargs parser and runs one command. Returns the exit code instead of
 * exiting, so tests can call it in-process. Users see one line per error; stacks only
 * under --debug.
 */
export async function runCli(argv: string[]): Promise<number> {
    const debug = argv.includes("--debug");
    let exitCode = 0;
    const parser = yargs(argv)
        .scriptName("autoact")
        .usage("$0 <command> [options]\n\nAutoAct on one box: self-instruct, synthesize, split and train LoRA sub-agents on a GGUF model.")
        .option("debug", { type: "boolean", describe: "Print stack traces for errors", default: false, global: true })
        .version(packageVersion())
        .strict()
        .demandCommand(1, "Name a command: autoact --help lists them.")
        .recommendCommands()
        .wrap(Math.min(110, process.stdout.columns ?? 110))
        .help()
        .middleware((args) => {
            // the command's own options: its builder has run by now
            const options = (parser as unknown as { getOptions(): { key: Record<string, unknown>; boolean: string[]; count: string[]; array: string[] } }).getOptions();
            refuseMissingValues(argv, new Set(Object.keys(options.key)), new Set([...options.boolean, ...options.count]));
            refuseRepeated(args, new Set(options.array));
            refuseNonNumbers(args, argv);
        }, true)
        .fail((message, error) => {
            // yargs validation (unknown flag, missing argument) and errors thrown in handlers both land here.
            throw error ?? new UserError(message ?? "invalid command line");
        });
    for (const command of commands)
        parser.command(command);

    try {
        await parser.parseAsync();
    } catch (error) {
        exitCode = reportError(error, debug);
    }
    return exitCode || (typeof process.exitCode === "number" ? process.exitCode : 0);
}

/**
 * A flag that takes one value, given twice, would reach the command as a list ("--agent plan
 * --agent all" as "plan,all"): refused, for every command.
 */
function refuseRepeated(args: Record<string, unknown>, arrays: Set<string>): void {
    for (const [key, value] of Object.entries(args)) {
        if (key !== "_" && !/[A-Z]/.test(key) && Array.isArray(value) && !arrays.has(key))
            throw new UserError(`--${key} is given more than once`);
    }
}

/**
 * yargs reads a number flag's text with Number(): "abc" becomes NaN, which later checks could
 * only report as "got NaN". Refuses it here, for every number flag, naming what was typed.
 */
function refuseNonNumbers(args: Record<string, unknown>, argv: string[]): void {
    for (const [key, value] of Object.entries(args)) {
        const values = Array.isArray(value) ? value : [value];
        if (/[A-Z]/.test(key) || !values.some((v) => typeof v === "number" && Number.isNaN(v)))
            continue;
        const typed = typedValues(argv, `--${key}`);
        throw new UserError(`--${key} must be a number, got ${typed.length > 0 ? typed.map((t) => JSON.stringify(t)).join(", ") : "none"}`);
    }
}

/**
 * A flag written without its value (last, or followed by another flag) would read as nothing or
 * as its default: a bare `--run-dir` is the working directory, a bare `--limit` no limit at all.
 * Refused instead; switches need no value.
 */
function refuseMissingValues(argv: string[], known: Set<string>, switches: Set<string>): void {
    argv.forEach((word, i) => {
        const name = /^--([a-z][\w-]*)$/.exec(word)?.[1];
        const next = argv[i + 1];
        if (name == null || (next != null && !next.startsWith("--")))
            return;
        const kebab = name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`); // yargs takes --fooBar for --foo-bar
        const names = [name, kebab].filter((n) => known.has(n)); // an unknown flag is yargs' to report
        if (names.length > 0 && !names.some((n) => switches.has(n)))
            throw new UserError(`--${name} needs a value`);
    });
}

/** What followed a flag on the command line, as `--flag=x` or `--flag x`. */
function typedValues(argv: string[], flag: string): string[] {
    const typed: string[] = [];
    argv.forEach((word, i) => {
        if (word.startsWith(`${flag}=`))
            typed.push(word.slice(flag.length + 1));
        else if (word === flag && i + 1 < argv.length)
            typed.push(argv[i + 1]);
    });
    return typed;
}

function reportError(error: unknown, debug: boolean): number {
    if (error instanceof UserError) {
        process.stderr.write(`autoact: ${oneLine(error.message)}\n`);
        if (error.hint != null)
            process.stderr.write(`hint: ${error.hint}\n`);
        if (debug && error.stack != null)
            process.stderr.write(`${error.stack}\n`);
        return error.exitCode;
    }
    // A file-system error that escaped its caller still names the file and the cause, on one line.
    const fsError = error as NodeJS.ErrnoException & { dest?: string };
    if (fsError instanceof Error && typeof fsError.code === "string" && /^E[A-Z]+$/.test(fsError.code) && fsError.path != null) {
        // A rename's error is about its destination (the source is our own temporary file).
        process.stderr.write(`autoact: ${fsError.dest != null ? `cannot write ${fsError.dest}: ${fileErrorCause(fsError)}` : fileErrorCause(fsError, fsError.path)}\n`);
        if (debug && fsError.stack != null)
            process.stderr.write(`${fsError.stack}\n`);
        return 2;
    }
    process.stderr.write(`autoact: ${oneLine(errorMessage(error))}\n`);
    if (debug && error instanceof Error && error.stack != null)
        process.stderr.write(`${error.stack}\n`);
    else
        process.stderr.write("hint: rerun with --debug for the stack trace\n");
    return 1;
}

/** Messages are one line: yargs and libraries sometimes break theirs over several. */
function oneLine(message: string): string {
    return message.split("\n").map((line) => line.trim()).filter((line) => line !== "").join(" ");
}
