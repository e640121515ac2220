import { Corpus } from "./corpus.js";
import { evaluateExpression, formatNumber, CalculatorError } from "./calculator.js";
import { runSandboxed, type SandboxOptions } from "./sandbox.js";
import { CODE_TOOL, parseAction, toolNameKey } from "./parse.js";
import { InputError } from "../util/errors.js";
import type { CorpusPage, ParsedAction, Tool, ToolSession } from "./types.js";

export interface ToolLibraryOptions {
    /** A corpus database path or an open Corpus, for Retrieve, Lookup and Search. Defaults to none: those tools then answer that no corpus is configured. */
    corpusDb?: string | Corpus;
    /** Longest Retrieve observation (cut at a sentence end). Defaults to 1200 characters. */
    retrieveMaxChars?: number;
    /** Similar titles offered when Retrieve finds no page. Defaults to 5. */
    similarTitles?: number;
    /** Search results shown. Defaults to 3. */
    searchResults?: number;
    /** Limits of the Code tool's sandbox. Defaults to 1000 ms, 32 MiB, 2000 output characters. */
    code?: SandboxOptions;
}

/** The result of running one action through the library. */
export interface ToolRunResult {
    /** The observation to append to the trajectory. */
    observation: string;
    /** The tool that ran (canonical name), undefined when the name matched none. */
    tool?: string;
    /** False when the name was unknown, the argument invalid, or the tool reported a failure. */
    ok: boolean;
}

export interface ToolLibrary {
    /** Every tool, protocol actions (Finish, Reflect) included, in library order. */
    readonly tools: readonly Tool[];
    /** A tool by name: case, spaces, underscores and dashes ignored. */
    get(name: string): Tool | undefined;
    /** Tools by names (as the meta-agent or a config writes them). Unknown names: InputError. */
    select(names: readonly string[]): Tool[];
    /**
     * Runs `Name[argument]` text or a parsed action: unknown names, protocol actions and bad
     * arguments come back as an observation with ok false; tool failures never throw.
     */
    execute(action: string | ParsedAction, session: ToolSession): Promise<ToolRunResult>;
    /** Closes the corpus when the library opened it. */
    close(): void;
}

// Observation prefixes the failure checks in execute() look for.
const FAILURE = /^(Could not find|No page|No sentence|No more results|No results|No corpus|No image|Calculator error|Code error|Invalid)/;

/** Builds the tool library. Opens the corpus (read-only) when given a path. */
export function createToolLibrary(options: ToolLibraryOptions = {}): ToolLibrary {
    const { retrieveMaxChars = 1200, similarTitles = 5, searchResults = 3, code = {} } = options;
    const ownsCorpus = typeof options.corpusDb === "string";
    const corpus = typeof options.corpusDb === "string" ? Corpus.open(options.corpusDb) : options.corpusDb;
    const tools: Tool[] = [
        retrieveTool(corpus, retrieveMaxChars, similarTitles),
        lookupTool(),
        searchTool(corpus, searchResults),
        image2TextTool(),
        calculatorTool(),
        codeTool(code),
        finishAction(),
        reflectAction()
    ];
    const byKey = new Map(tools.map((tool) => [toolNameKey(tool.name), tool]));
    const get = (name: string) => byKey.get(toolNameKey(name));
    return {
        tools,
        get,
        select(names) {
            return names.map((name) => {
                const tool = get(name);
                if (tool == null)
                    throw new InputError(`unknown tool "${name}" (the library has ${tools.map((t) => t.name).join(", ")})`);
                return tool;
            });
        },
        async execute(action, session) {
            const parsed = typeof action === "string" ? parseAction(action) : action;
            if (parsed == null)
                return { observation: "Invalid action: write it as Name[argument].", ok: false };
            const tool = get(parsed.name);
            if (tool == null)
                return { observation: `Invalid action: there is no tool named "${parsed.name}". Tools: ${tools.map((t) => t.name).join(", ")}.`, ok: false };
            if (tool.kind === "protocol")
                return { observation: `Invalid action: ${tool.name} is handled by the agent loop, not run as a tool.`, tool: tool.name, ok: false };
            const problem = tool.validate(parsed.argument);
            if (problem != null)
                return { observation: problem, tool: tool.name, ok: false };
            const observation = await tool.run(parsed.argument, session);
            return { observation, tool: tool.name, ok: !FAILURE.test(observation) };
        },
        close() {
            if (ownsCorpus)
                corpus?.close();
        }
    };
}

function requireArgument(what: string, example: string): (argument: string) => string | null {
    return (argument) => argument.trim().length === 0 ? `Invalid argument: ${what} is empty; for example ${example}.` : null;
}

const NO_CORPUS = "No corpus is configured for this run, so pages cannot be retrieved.";

function retrieveTool(corpus: Corpus | undefined, maxChars: number, similarCount: number): Tool {
    const example = "Retrieve[Milhouse Van Houten]";
    return {
        name: "Retrieve",
        signature: "Retrieve[entity]",
        description: "Returns the first paragraph of the corpus page whose title is the entity, or the most similar titles when no page has that title.",
        example,
        kind: "tool",
        validate: requireArgument("the entity", example),
        async run(argument, session) {
            if (corpus == null)
                return NO_CORPUS;
            const entity = stripQuotes(argument);
            // a sentence's full stop after the title ("Retrieve[Henri Leconte.]"), where no title has it
            const page = corpus.getPage(entity) ?? corpus.getPage(entity.replace(/[.,;:!?]+$/, ""));
            session.state.lookup = undefined;
            if (page == null) {
                session.state.page = undefined;
                const similar = corpus.similarTitles(entity, similarCount);
                return `Could not find ${echo(entity)}. Similar: [${similar.map((t) => `'${t}'`).join(", ")}].`;
            }
            session.state.page = page;
            const paragraph = page.text.split(/\n\s*\n/)[0]!.trim();
            return clip(paragraph, maxChars);
        }
    };
}

function lookupTool(): Tool {
    const example = "Lookup[Springfield]";
    return {
        name: "Lookup",
        signature: "Lookup[keyword]",
        description: "Returns the next sentence containing the keyword in the page last retrieved with Retrieve, or in the pages the last Search found; repeat it to see further matches.",
        example,
        kind: "tool",
        validate: requireArgument("the keyword", example),
        async run(argument, session) {
            const page = session.state.page;
            if (page == null)
                return "No page has been retrieved yet: use Retrieve[entity] or Search[query] first, then Lookup[keyword].";
            const keyword = stripQuotes(argument);
            let cursor = session.state.lookup;
            if (cursor == null || cursor.keyword.toLowerCase() !== keyword.toLowerCase()) {
                const needle = keyword.toLowerCase();
                cursor = { keyword, results: page.sentences.filter((s) => s.toLowerCase().includes(needle)), next: 0 };
                session.state.lookup = cursor;
            }
            if (cursor.results.length === 0)
                return `No sentence in ${page.title} contains "${echo(keyword)}".`;
            if (cursor.next >= cursor.results.length)
                return `No more results for "${keyword}" in ${page.title} (all ${cursor.results.length} shown).`;
            const index = cursor.next++;
            return `(Result ${index + 1} / ${cursor.results.length}) ${cursor.results[index]}`;
        }
    };
}

function searchTool(corpus: Corpus | undefined, count: number): Tool {
    const example = "Search[first woman to win a Nobel Prize]";
    return {
        name: "Search",
        signature: "Search[query]",
        description: "Full-text search of the corpus (BM25): returns the titles and matching passages of the best pages.",
        example,
        kind: "tool",
        validate: requireArgument("the query", example),
        async run(argument, session) {
            if (corpus == null)
                return NO_CORPUS;
            const hits = corpus.search(argument, count);
            session.state.lookup = undefined;
            if (hits.length === 0) {
                session.state.page = undefined;
                return `No results for "${echo(argument.trim())}".`;
            }
            // As in the original, Lookup works after a search too: it reads the pages found, best first.
            session.state.page = searchResultsPage(corpus, hits.map((hit) => hit.title));
            return hits.map((hit, i) => `${i + 1}. ${hit.title}: ${hit.snippet}`).join("\n");
        }
    };
}

/** The pages a search found, read by Lookup as one page: their sentences in rank order. */
function searchResultsPage(corpus: Corpus, titles: string[]): CorpusPage {
    const pages = titles.map((title) => corpus.getPage(title)).filter((page) => page != null);
    return {
        title: `the pages found (${titles.join("; ")})`,
        text: pages.map((page) => page.text).join("\n\n"),
        sentences: pages.flatMap((page) => page.sentences)
    };
}

function image2TextTool(): Tool {
    return {
        name: "Image2Text",
        signature: "Image2Text[image]",
        description: "Describes the image attached to the task: a caption and the text read from it (OCR).",
        example: "Image2Text[image]",
        kind: "tool",
        validate: () => null,
        async run(_argument, session) {
            const image = session.state.image;
            if (image == null || (image.caption.trim() === "" && image.ocr.trim() === ""))
                return "No image is attached to this task.";
            const lines = [`Caption: ${image.caption.trim() || "none"}`];
            lines.push(`Text in the image: ${image.ocr.trim() || "none"}`);
            return lines.join("\n");
        }
    };
}

function calculatorTool(): Tool {
    const example = "Calculator[(1927 - 1889) * 2.5]";
    return {
        name: "Calculator",
        signature: "Calculator[expression]",
        description: "Evaluates an arithmetic expression: + - * / ^, % (percent after a number, modulo between two), parentheses, decimals, pi, e, sqrt, abs, round, floor, ceil, ln, log, exp, sin, cos, tan, min, max.",
        example,
        kind: "tool",
        validate: requireArgument("the expression", example),
        async run(argument) {
            const expression = stripQuotes(argument).replace(/=\s*$/, "");
            try {
                return formatNumber(evaluateExpression(expression));
            } catch (error) {
                if (error instanceof CalculatorError)
                    return `Calculator error: ${error.message}.`;
                throw error;
            }
        }
    };
}

function codeTool(limits: SandboxOptions): Tool {
    const example = "Code[const xs = [3, 1, 2]; console.log(xs.sort().join(','))]";
    return {
        name: CODE_TOOL,
        signature: "Code[javascript]",
        description: "Runs JavaScript in a sandbox without files or network and returns what console.log printed and the value of the last expression.",
        example,
        kind: "tool",
        validate: requireArgument("the code", example),
        async run(argument) {
            const code = argument.trim().replace(/^```[a-zA-Z]*\s*\n?/, "").replace(/\n?```$/, "");
            const result = await runSandboxed(code, limits);
            if (!result.ok)
                return `Code error: ${result.error}${result.output ? `\nOutput before the error:\n${result.output}` : ""}`;
            return result.output.length > 0 ? result.output : "The code ran and printed nothing.";
        }
    };
}

function finishAction(): Tool {
    return {
        name: "Finish",
        signature: "Finish[answer]",
        description: "Gives the final answer and ends the task (after a Reflect).",
        example: "Finish[Badr Hari]",
        kind: "protocol",
        validate: requireArgument("the answer", "Finish[yes]"),
        async run() {
            return "Invalid action: Finish is handled by the agent loop.";
        }
    };
}

function reflectAction(): Tool {
    return {
        name: "Reflect",
        signature: "Reflect[right|wrong]",
        description: "Must directly follow Finish: judges whether the answer just given is right (the task ends) or wrong (solve it again).",
        example: "Reflect[right]",
        kind: "protocol",
        validate: (argument) => /^(right|wrong)$/i.test(stripQuotes(argument)) ? null : "Invalid argument: Reflect takes right or wrong.",
        async run() {
            return "Invalid action: Reflect is handled by the agent loop.";
        }
    };
}

/** An argument repeated in a failure's observation: a degenerate one (thousands of characters) would fill the history. */
function echo(argument: string, maxChars = 200): string {
    return argument.length <= maxChars ? argument : `${argument.slice(0, maxChars)}...`;
}

function stripQuotes(text: string): string {
    return text.trim().replace(/^["'`“‘]+|["'`”’]+$/g, "").trim();
}

/** Cuts text at the last sentence end before `maxChars` (or hard at maxChars). */
function clip(text: string, maxChars: number): string {
    if (text.length <= maxChars)
        return text;
    const cut = text.slice(0, maxChars);
    const end = Math.max(cut.lastIndexOf(". "), cut.lastIndexOf("! "), cut.lastIndexOf("? "));
    return end > maxChars / 2 ? cut.slice(0, end + 1) : `${cut.trimEnd()}...`;
}
