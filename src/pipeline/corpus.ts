import fs from "node:fs";
import Database from "better-sqlite3";
import { Corpus } from "../tools/corpus.js";
import { importCorpus, type CorpusFormat, type ImportCorpusResult } from "../tools/corpus-import.js";
import { cachedSha256 } from "../util/file-hash.js";
import { InputError } from "../util/errors.js";
import { loadEvalExamples } from "./eval-data.js";
import type { Passage } from "../agents/meta-agent.js";
import type { SeededRandom } from "../util/random.js";
import { writeFileAtomicSync } from "../util/fs.js";
import { hashValues } from "./run-dir.js";
import type { StageContext } from "./context.js";

/** What the manifest and the report say about a run's corpus. */
export interface CorpusRecord {
    sources: { name: string; file: string; format: string; sha256: string; pagesAdded: number }[];
    pages: number;
    overlap: EvalOverlap;
    /** `data.allow_eval_overlap` when the corpus was checked. */
    allowed: boolean;
}

/**
 * How much of the evaluation sets the corpus holds. An eval question overlaps when the
 * corpus has at least half of its own context paragraphs (same title, same text): the
 * eval set's paragraphs as a source, not an article that a training question happens to
 * share. Questions without context paragraphs (ScienceQA) cannot be measured this way.
 */
export interface EvalOverlap {
    /** Eval questions with context paragraphs. */
    measured: number;
    /** Of these, the ones the corpus holds at least half the paragraphs of. */
    questions: number;
    /** Eval paragraphs found in the corpus (distinct titles, any question). */
    paragraphs: number;
    /**
     * Eval questions with a supporting paragraph in the corpus (HotpotQA's supporting_facts):
     * measured and reported, not refused (a corpus of Wikipedia's paragraphs shares some with
     * any benchmark written from Wikipedia). Absent in records made before it was measured.
     */
    supporting?: number;
    /** One overlapping question, for the message: "set: question". */
    example: string;
}

/**
 * The retrieval corpus of a run: `corpus.sqlite` in the run directory, imported from the
 * config's `data.corpus` sources the first time a stage needs it (and again only when those
 * sources change), recorded in the manifest with their hashes and the overlap with the
 * evaluation sets. A corpus holding the evaluation questions' paragraphs is refused unless
 * `data.allow_eval_overlap` is true. An empty list gives an empty corpus: the tools say so.
 */
export async function ensureRunCorpus(context: StageContext): Promise<string> {
    const db = context.runDir.file("corpus.sqlite");
    const stamp = context.runDir.file("corpus.sqlite.source.json");
    const sources = await Promise.all(context.config.data.corpus.map((name) => context.data.requireCorpus(name)));
    // by content (hashed once per file version): an edit that keeps the size, or a touch, is told apart
    const identity = hashValues(
        await Promise.all(sources.map(async ({ file, format }) => [file, format, await cachedSha256(file)])),
        await evalFiles(context));
    // the database as this function left it: pages added to it by hand (autoact corpus import
    // --db into the run) were never measured against the eval sets, so it is made again
    const dbState = () => {
        const stat = fs.statSync(db);
        return `${stat.size}:${stat.mtimeMs}`;
    };
    let record: CorpusRecord | null = null;
    if (fs.existsSync(db) && fs.existsSync(stamp)) {
        const saved = JSON.parse(fs.readFileSync(stamp, "utf8")) as { identity: string; db?: string; record: CorpusRecord };
        if (saved.identity === identity && saved.db === dbState())
            record = saved.record;
    }
    if (record == null) {
        fs.rmSync(db, { force: true });
        if (sources.length === 0)
            await importCorpus({ file: emptyJsonl(context), db, format: "jsonl", replace: true, allowEmpty: true });
        const imported: CorpusRecord["sources"] = [];
        for (const [i, source] of sources.entries()) {
            let lastLog = performance.now();
            const result = await importCorpus({
                file: source.file, db, format: source.format as CorpusFormat, replace: i === 0,
                onProgress: ({ pages, records }) => {
                    if (performance.now() - lastLog > 5000) {
                        lastLog = performance.now();
                        context.log(`corpus: ${source.name}: ${records} records, ${pages} pages so far`);
                    }
                }
            });
            context.log(`corpus: ${source.name} (${source.file}): ${result.pagesAdded} pages added (${result.totalPages} in all, ${result.pagesPerSecond.toFixed(0)} pages/s)` +
                `${describeSkipped(result)}`);
            imported.push({ name: source.name, file: source.file, format: result.format, sha256: await cachedSha256(source.file), pagesAdded: result.pagesAdded });
        }
        const corpus = Corpus.open(db);
        try {
            const overlap = sources.length === 0 ? { measured: 0, questions: 0, paragraphs: 0, supporting: 0, example: "" } : await measureEvalOverlap(context, corpus);
            record = { sources: imported, pages: corpus.pageCount(), overlap, allowed: false };
        } finally {
            corpus.close();
        }
    }
    record.allowed = context.config.data.allow_eval_overlap;
    writeFileAtomicSync(stamp, JSON.stringify({ identity, db: dbState(), record }) + "\n");
    const manifest = context.runDir.readManifest(context.config.name);
    manifest.corpus = record;
    context.runDir.writeManifest(manifest);
    if (record.overlap.questions > 0 && !record.allowed)
        throw new InputError(`corpus ${context.config.data.corpus.join(", ")} holds the paragraphs of ${describeOverlap(record.overlap)}: ` +
            "self-instruct and evaluation would read the eval set's own context", {
            hint: "use a corpus apart from the eval set (e.g. data.corpus: [train-paragraphs]), or set data.allow_eval_overlap: true for a closed-book study"
        });
    return db;
}

/** What an import joined or left out, for the log: "" when nothing. */
function describeSkipped(result: ImportCorpusResult): string {
    const parts = [
        result.joined > 0 ? `${result.joined} passages joined to their title's page` : "",
        result.duplicates > 0 ? `${result.duplicates} duplicate titles skipped` : "",
        result.emptyPages > 0 ? `${result.emptyPages} pages without text skipped` : ""
    ].filter((part) => part !== "");
    return parts.length === 0 ? "" : `; ${parts.join(", ")}`;
}

export function describeOverlap(overlap: EvalOverlap): string {
    if (overlap.measured === 0)
        return "not measured (no corpus, or the evaluation sets carry no context paragraphs to compare)";
    const supporting = overlap.supporting == null ? "" : `; ${overlap.supporting} have a supporting paragraph in it`;
    return `${overlap.questions} of ${overlap.measured} eval questions (${overlap.paragraphs} eval paragraphs${supporting}${overlap.example ? `; e.g. ${overlap.example}` : ""})`;
}

function evalFiles(context: StageContext): Promise<unknown> {
    return Promise.all(context.config.data.eval.map(async (set) => {
        const file = context.data.find(set.file);
        return [set.name, file, file == null ? null : await cachedSha256(file)];
    }));
}

/**
 * The corpus against the eval questions' context paragraphs: a paragraph is held when a page
 * of its title, or of any title that has its first words in order, holds it (whitespace,
 * Unicode forms, case and punctuation aside: a whole article holds its first paragraph). A question counts as
 * overlapping, and is refused, when the corpus holds at least half its paragraphs (the eval
 * file itself, or its context bundles, used as a corpus); its supporting paragraphs are
 * counted apart.
 */
async function measureEvalOverlap(context: StageContext, corpus: Corpus): Promise<EvalOverlap> {
    const overlap: EvalOverlap = { measured: 0, questions: 0, paragraphs: 0, supporting: 0, example: "" };
    const plain = (text: string) => text.normalize("NFKC").toLowerCase().replace(/[^\p{L}\p{N}]+/gu, "");
    const heldTitles = new Set<string>();
    for (const set of context.config.data.eval) {
        for (const example of await loadEvalExamples(context, set)) {
            const paragraphs = example.context ?? [];
            if (paragraphs.length === 0)
                continue;
            overlap.measured++;
            const held = paragraphs.filter((p) => {
                const text = plain(p.sentences.join(" "));
                if (text === "")
                    return false;
                // under its title, else under any other (a corpus that renamed or re-keyed its pages)
                const page = corpus.getPage(p.title);
                return (page != null && plain(page.text).includes(text)) ||
                    corpus.pagesWithPhrase(p.sentences.join(" ")).some((other) => plain(other.text).includes(text));
            });
            held.forEach((p) => heldTitles.add(p.title));
            const supports = new Set(supportingTitles(example.meta));
            if (held.some((p) => supports.has(p.title)))
                overlap.supporting!++;
            if (2 * held.length >= paragraphs.length) {
                overlap.questions++;
                overlap.example ||= `${set.name}: "${example.question.slice(0, 80)}" (${held.length} of ${paragraphs.length} paragraphs)`;
            }
        }
    }
    overlap.paragraphs = heldTitles.size;
    return overlap;
}

/** The titles of HotpotQA's supporting facts ([title, sentence index] pairs). */
function supportingTitles(meta: Record<string, unknown> | undefined): string[] {
    const facts = meta?.supportingFacts;
    return Array.isArray(facts) ? facts.map((fact) => (Array.isArray(fact) ? String(fact[0]) : "")).filter((title) => title !== "") : [];
}

function emptyJsonl(context: StageContext): string {
    const file = context.runDir.file(".empty-corpus.jsonl");
    fs.writeFileSync(file, "");
    return file;
}

export interface RunCorpus {
    corpus: Corpus;
    /** `count` random pages (their first sentences), for corpus-grounded self-instruct. */
    samplePages(count: number, random: SeededRandom): Passage[];
    close(): void;
}

export async function openRunCorpus(context: StageContext): Promise<RunCorpus> {
    const file = await ensureRunCorpus(context);
    const corpus = Corpus.open(file);
    const db = new Database(file, { readonly: true, fileMustExist: true });
    const maxId = (db.prepare("SELECT coalesce(max(id), 0) AS n FROM pages").get() as { n: number }).n;
    const byId = db.prepare("SELECT title, text FROM pages WHERE id >= ? ORDER BY id LIMIT 1");
    return {
        corpus,
        samplePages(count, random) {
            const pages: Passage[] = [];
            const seen = new Set<string>();
            for (let tries = 0; pages.length < count && tries < count * 5 && maxId > 0; tries++) {
                const row = byId.get(1 + random.integer(maxId)) as Passage | undefined;
                if (row != null && !seen.has(row.title)) {
                    seen.add(row.title);
                    pages.push({ title: row.title, text: row.text.slice(0, 600) });
                }
            }
            return pages;
        },
        close() {
            db.close();
            corpus.close();
        }
    };
}
