/** The precomputed description of a task's image (ScienceQA ships caption and OCR text). */
export interface ImageInfo {
    caption: string;
    ocr: string;
}

/** A page of the corpus, as Retrieve hands it to Lookup. */
export interface CorpusPage {
    title: string;
    text: string;
    sentences: string[];
}

/** What a Tool may read and update while one trajectory runs. */
export interface ToolSessionState {
    /** The page the last successful Retrieve returned; Lookup reads it. */
    page?: CorpusPage;
    /** Lookup's cursor: the keyword, its matching sentences and the next one to show. */
    lookup?: { keyword: string; results: string[]; next: number };
    /** The task's image caption and OCR, when the task has an image. */
    image?: ImageInfo;
}

/**
 * One tool of the library. `run` never throws for bad input or tool failure: it returns
 * the observation the agent should read. An exception from `run` is a bug.
 */
export interface Tool {
    /** Canonical name, as the prompt shows it: "Retrieve". */
    readonly name: string;
    /** Call shape with a placeholder argument: "Retrieve[entity]". */
    readonly signature: string;
    /** One or two sentences for the prompt. */
    readonly description: string;
    /** A usage example: "Retrieve[Barack Obama]". */
    readonly example: string;
    /** "tool" runs here; "protocol" (Finish, Reflect) is handled by the agent loop. */
    readonly kind: "tool" | "protocol";
    /** Returns an error observation when the argument is unusable, else null. */
    validate(argument: string): string | null;
    /** Runs the tool and returns the observation text. */
    run(argument: string, session: ToolSession): Promise<string>;
}

/** Per-trajectory state of the tools. Create one per question; not shared between them. */
export class ToolSession {
    state: ToolSessionState;

    constructor(options: {
        /** The task's image caption/OCR. Defaults to none ("no image" observations). */
        image?: ImageInfo;
    } = {}) {
        this.state = { image: options.image };
    }
}

/** A parsed `Name[argument]` action. */
export interface ParsedAction {
    /** The name as written (trimmed); match it to a tool with `library.get(name)`. */
    name: string;
    /** The text between the brackets, trimmed; "" when there is none. */
    argument: string;
    /** False when the closing bracket (or the bracket pair) was missing and the argument was guessed. */
    complete: boolean;
}
