import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { InputError, RuntimeFailure } from "../util/errors.js";
import { makeDirectory, releaseTemporary, requireFile, temporaryNameFor } from "../util/fs.js";
import { spawn } from "node:child_process";
import readline from "node:readline";
import { readJsonFile, readJsonRecords, type JsonRecord } from "../data/datasets/records.js";
import { CORPUS_SCHEMA, CORPUS_SCHEMA_VERSION, titleKey } from "./corpus.js";
import { splitSentences } from "./sentences.js";

export type CorpusFormat = "auto" | "jsonl" | "hotpotqa" | "scienceqa-problems" | "wiki-abstracts";
export const corpusFormats: readonly CorpusFormat[] = ["auto", "jsonl", "hotpotqa", "scienceqa-problems", "wiki-abstracts"];

export interface ImportCorpusOptions {
    /** JSONL of pages `{title, text}` (or `{title, sentences}`), or a HotpotQA file (BOLAA JSONL or the official JSON array). */
    file: string;
    /** The SQLite database to create or add to. */
    db: string;
    /**
     * "jsonl" = pages; "hotpotqa" = questions whose context paragraphs become pages;
     * "scienceqa-problems" = ScienceQA's problems.json, whose train-split lectures and
     * solutions become pages; "wiki-abstracts" = HotpotQA's Wikipedia-abstracts dump
     * (.tar.bz2 of bz2 JSONL, read through tar and bzip2). Defaults to "auto" (decided
     * from the first record; the two dumps are named explicitly).
     */
    format?: CorpusFormat;
    /** Start a new database even when `db` exists. Defaults to false (pages are added; titles already present are skipped). */
    replace?: boolean;
    /** Pages per transaction. Defaults to 10000. */
    batchSize?: number;
    /** Accept an input without pages (creates an empty corpus, whose tools say so). Defaults to false: an empty input is an InputError. */
    allowEmpty?: boolean;
    /** Called after each committed batch. Defaults to none. */
    onProgress?: (progress: { pages: number; records: number }) => void;
}

export interface ImportCorpusResult {
    db: string;
    format: Exclude<CorpusFormat, "auto">;
    /** Records read from the file (pages, or questions for HotpotQA). */
    records: number;
    /** Pages added to the database. */
    pagesAdded: number;
    /** Pages skipped because their title was already present (or, JSONL, their text already in its page). */
    duplicates: number;
    /** JSONL records joined to an earlier record of this import with the same title (passages of one page). */
    joined: number;
    /** Pages skipped because they have no text (a title alone answers no question). */
    emptyPages: number;
    /** Pages in the database after the import. */
    totalPages: number;
    seconds: number;
    pagesPerSecond: number;
}

interface NewPage {
    title: string;
    text: string;
    sentences: string[];
}

/**
 * Imports pages into a corpus database. Streams the input and commits in batches; works on
 * a hidden temporary copy that replaces `db` only when everything went well, so bad input
 * (reported with file and line) never leaves a half-written database.
 */
export async function importCorpus(options: ImportCorpusOptions): Promise<ImportCorpusResult> {
    const { file, db: target, format = "auto", replace = false, batchSize = 10_000, allowEmpty = false, onProgress } = options;
    requireFile(file, "corpus input file");
    if (!corpusFormats.includes(format))
        throw new InputError(`unknown corpus format "${format}" (expected ${corpusFormats.join(", ")})`);
    makeDirectory(path.dirname(path.resolve(target)));
    // checked first: the rename onto it would fail only after the whole import
    if (fs.statSync(target, { throwIfNoEntry: false })?.isDirectory())
        throw new InputError(`corpus database ${target} is a folder; name a file in it (e.g. ${path.join(target, "corpus.sqlite")})`);
    const started = performance.now();
    const tmp = temporaryNameFor(target);
    let db: Database.Database | undefined;
    try {
        if (!replace && fs.existsSync(target))
            fs.copyFileSync(target, tmp);
        db = new Database(tmp);
        // A temporary file renamed at the end: no journal needed for crash safety.
        db.pragma("journal_mode = OFF");
        db.pragma("synchronous = OFF");
        db.pragma("cache_size = -262144");
        db.pragma("temp_store = MEMORY");
        db.exec(CORPUS_SCHEMA);
        const version = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string } | undefined;
        if (version != null && Number(version.value) !== CORPUS_SCHEMA_VERSION)
            throw new InputError(`${target}: corpus schema version ${version.value}, expected ${CORPUS_SCHEMA_VERSION}; import with --replace`);
        db.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)").run(String(CORPUS_SCHEMA_VERSION));

        const insertPage = db.prepare("INSERT OR IGNORE INTO pages(title, key, text, sentences) VALUES (?, ?, ?, ?)");
        const insertText = db.prepare("INSERT INTO pages_fts(rowid, title, text) VALUES (?, ?, ?)");
        const insertTitle = db.prepare("INSERT INTO titles_fts(rowid, title) VALUES (?, ?)");
        const pageByTitle = db.prepare("SELECT id, text, sentences FROM pages WHERE title = ?");
        const updatePage = db.prepare("UPDATE pages SET text = ?, sentences = ? WHERE id = ?");
        const deleteText = db.prepare("INSERT INTO pages_fts(pages_fts, rowid, title, text) VALUES ('delete', ?, ?, ?)");
        // Pages from this id on are this import's: a JSONL record may join them, not older ones.
        const firstNewId = ((db.prepare("SELECT max(id) AS id FROM pages").get() as { id: number | null }).id ?? 0) + 1;
        let added = 0, duplicates = 0, joined = 0, emptyPages = 0, records = 0;
        /**
         * DPR-style JSONL corpora hold many passages per title: they become one page, passages
         * in file order. A passage already in the page, or a page from an earlier import, is a
         * duplicate. HotpotQA's questions share paragraphs, so their repeats stay duplicates.
         */
        const join = (page: NewPage): "joined" | "duplicate" => {
            const row = pageByTitle.get(page.title) as { id: number; text: string; sentences: string } | undefined;
            if (row == null || row.id < firstNewId || row.text.includes(page.text))
                return "duplicate";
            const text = `${row.text} ${page.text}`;
            updatePage.run(text, JSON.stringify([...JSON.parse(row.sentences) as string[], ...page.sentences]), row.id);
            deleteText.run(row.id, page.title, row.text);
            insertText.run(row.id, page.title, text);
            return "joined";
        };
        const commit = db.transaction((pages: NewPage[], joinSameTitle: boolean) => {
            for (const page of pages) {
                if (page.text === "") {
                    emptyPages++;
                    continue;
                }
                const info = insertPage.run(page.title, titleKey(page.title), page.text, JSON.stringify(page.sentences));
                if (info.changes === 0) {
                    if (joinSameTitle && join(page) === "joined")
                        joined++;
                    else
                        duplicates++;
                    continue;
                }
                const id = info.lastInsertRowid;
                insertText.run(id, page.title, page.text);
                insertTitle.run(id, page.title);
                added++;
            }
        });

        let resolved: ImportCorpusResult["format"] | undefined = format === "auto" ? undefined : format;
        let batch: NewPage[] = [];
        const input = format === "scienceqa-problems" ? scienceqaRecords(file)
            : format === "wiki-abstracts" ? wikiAbstractRecords(file)
            : readJsonRecords(file, { what: "corpus input file", allowEmpty, objectHint: "for ScienceQA's problems.json use --format scienceqa-problems" });
        for await (const record of input) {
            records++;
            resolved ??= detectFormat(file, record);
            if (resolved === "hotpotqa")
                batch.push(...hotpotqaPages(file, record));
            else if (resolved === "scienceqa-problems")
                batch.push(...(record.value as NewPage[]));
            else if (resolved === "wiki-abstracts")
                batch.push(...wikiAbstractPage(file, record));
            else
                batch.push(jsonlPage(file, record));
            if (batch.length >= batchSize) {
                commit(batch, resolved === "jsonl");
                batch = [];
                onProgress?.({ pages: added, records });
                // Read-ahead input and synchronous SQLite never yield: let an interrupt in.
                await new Promise((resolve) => setImmediate(resolve));
            }
        }
        commit(batch, resolved === "jsonl");
        onProgress?.({ pages: added, records });
        if (added === 0 && duplicates === 0 && !allowEmpty)
            throw new InputError(`${file}: no pages to import${emptyPages > 0 ? ` (${emptyPages} without text)` : ""}`);
        // Merges the FTS b-trees once, so queries on the finished corpus read fewer segments.
        db.exec("INSERT INTO pages_fts(pages_fts) VALUES ('optimize'); INSERT INTO titles_fts(titles_fts) VALUES ('optimize');");
        const totalPages = (db.prepare("SELECT count(*) AS n FROM pages").get() as { n: number }).n;
        db.pragma("journal_mode = DELETE");
        db.close();
        db = undefined;
        fs.renameSync(tmp, target);
        const seconds = (performance.now() - started) / 1000;
        return {
            db: target, format: resolved ?? "jsonl", records, pagesAdded: added, duplicates, joined, emptyPages, totalPages,
            seconds, pagesPerSecond: added / Math.max(seconds, 1e-9)
        };
    } catch (error) {
        // SQLite's own errors ("file is not a database", "database disk image is malformed") name no file.
        const code = (error as { code?: unknown }).code;
        if (typeof code === "string" && code.startsWith("SQLITE_"))
            throw new InputError(`${target}: not a usable corpus database (${(error as Error).message}); import with --replace to start it afresh`);
        throw error;
    } finally {
        if (db?.open)
            db.close();
        fs.rmSync(tmp, { force: true });
        releaseTemporary(tmp);
    }
}

/**
 * ScienceQA's problems.json ({pid: problem}): every train problem's solution is a page, and
 * each lecture once (problems of one skill share it). Validation and test problems, the
 * evaluation side, are left out. Records are ready pages.
 */
async function* scienceqaRecords(file: string): AsyncGenerator<JsonRecord> {
    const problems = readJsonFile(file, "ScienceQA problems file");
    if (problems == null || typeof problems !== "object" || Array.isArray(problems))
        throw new InputError(`${file}: expected ScienceQA's problems.json, an object of {pid: problem}`);
    const lectures = new Set<string>();
    for (const [pid, value] of Object.entries(problems as Record<string, Record<string, unknown>>)) {
        if (value?.split !== "train")
            continue;
        const pages: NewPage[] = [];
        const text = (key: string) => (typeof value[key] === "string" ? (value[key] as string).trim() : "");
        const skill = text("skill") || text("topic") || pid;
        if (text("lecture") !== "" && !lectures.has(skill)) {
            lectures.add(skill);
            pages.push({ title: skill, text: text("lecture"), sentences: splitSentences(text("lecture")) });
        }
        if (text("solution") !== "") {
            const body = `${text("question")} ${text("solution")}`.trim();
            pages.push({ title: `${skill}: solution ${pid}`, text: body, sentences: splitSentences(body) });
        }
        if (pages.length > 0)
            yield { value: pages, line: 1 };
    }
}

/** The lines of HotpotQA's abstracts dump: a .tar.bz2 of bz2 JSONL files, through tar and bzip2. */
async function* wikiAbstractRecords(file: string): AsyncGenerator<JsonRecord> {
    // tar writes the inner .bz2 files one after another; bzip2 reads concatenated streams.
    const child = spawn("sh", ["-c", 'tar -xjOf "$1" | bzip2 -dc', "sh", file], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    let line = 0;
    let finished = false;
    try {
        for await (const text of readline.createInterface({ input: child.stdout, crlfDelay: Infinity })) {
            line++;
            if (text.trim() === "")
                continue;
            try {
                yield { value: JSON.parse(text), line };
            } catch (error) {
                throw new InputError(`${file}: line ${line} of the dump is not JSON (${(error as Error).message})`);
            }
        }
        finished = true;
    } finally {
        if (!finished)
            child.kill();
    }
    const code = await exited;
    if (code !== 0)
        throw new RuntimeFailure(`${file}: tar/bzip2 failed to read the abstracts dump: ${stderr.trim().split("\n")[0] ?? `exit ${code}`}`);
}

/** A dump line {title, text}: text is a sentence list (or paragraphs of sentences), with links. */
function wikiAbstractPage(file: string, record: JsonRecord): NewPage[] {
    const value = record.value as Record<string, unknown>;
    if (value == null || typeof value.title !== "string")
        throw new InputError(`${file}: line ${record.line} of the dump has no "title"`);
    const strings = [value.text].flat(3).filter((s): s is string => typeof s === "string");
    const sentences = strings.map((s) => s.replace(/<[^>]+>/g, "").trim()).filter((s) => s !== "");
    return [{ title: value.title.trim(), text: sentences.join(" "), sentences }];
}

function detectFormat(file: string, record: JsonRecord): "jsonl" | "hotpotqa" {
    const value = record.value;
    if (value != null && typeof value === "object" && !Array.isArray(value)) {
        if ("context" in value && "question" in value)
            return "hotpotqa";
        if ("title" in value)
            return "jsonl";
    }
    throw new InputError(`${file}:${record.line}: cannot tell the corpus format: expected a page {title, text} or a HotpotQA question {question, context}`);
}

function jsonlPage(file: string, record: JsonRecord): NewPage {
    const value = record.value as Record<string, unknown>;
    const where = `${file}:${record.line}`;
    if (value == null || typeof value !== "object" || Array.isArray(value))
        throw new InputError(`${where}: expected a JSON object {title, text}`);
    const title = value.title;
    if (typeof title !== "string" || title.trim().length === 0)
        throw new InputError(`${where}: key "title" must be a non-empty string`);
    let sentences: string[];
    let text: string;
    if (value.sentences !== undefined) {
        if (!Array.isArray(value.sentences) || !value.sentences.every((s) => typeof s === "string"))
            throw new InputError(`${where}: key "sentences" must be an array of strings`);
        sentences = (value.sentences as string[]).map((s) => s.trim()).filter((s) => s.length > 0);
        text = typeof value.text === "string" ? value.text.trim() : sentences.join(" ");
    } else {
        if (typeof value.text !== "string")
            throw new InputError(`${where}: key "text" must be a string`);
        text = value.text.trim();
        sentences = splitSentences(text);
    }
    return { title: title.trim(), text, sentences };
}

function hotpotqaPages(file: string, record: JsonRecord): NewPage[] {
    const value = record.value as Record<string, unknown>;
    const where = `${file}:${record.line}`;
    if (value == null || typeof value !== "object" || !Array.isArray(value.context))
        throw new InputError(`${where}: key "context" must be a list of [title, sentences] pairs`);
    return value.context.map((entry: unknown, index: number) => {
        if (!Array.isArray(entry) || typeof entry[0] !== "string" || !Array.isArray(entry[1]) ||
            !entry[1].every((s: unknown) => typeof s === "string"))
            throw new InputError(`${where}: context[${index}] must be [title, [sentences]]`);
        const raw = entry[1] as string[];
        // HotpotQA keeps each sentence's leading space: joining with "" restores the paragraph.
        return {
            title: entry[0].trim(),
            text: raw.join("").trim(),
            sentences: raw.map((s) => s.trim()).filter((s) => s.length > 0)
        };
    });
}
