import fs from "node:fs";
import Database from "better-sqlite3";
import { InputError } from "../util/errors.js";
import type { CorpusPage } from "./types.js";

/** Bumped when the table layout changes; `Corpus.open` refuses other versions. */
export const CORPUS_SCHEMA_VERSION = 1;

/**
 * pages: one row per unique title; `key` is the normalized title for case-insensitive
 * lookups; `sentences` is a JSON array (Lookup walks it).
 * pages_fts: BM25 over title and text (porter stemming). titles_fts: trigrams of titles,
 * for fuzzy "similar titles". Both are external-content tables over pages (no copy of text).
 */
export const CORPUS_SCHEMA = `
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pages(
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL UNIQUE,
    key TEXT NOT NULL,
    text TEXT NOT NULL,
    sentences TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pages_key ON pages(key);
CREATE VIRTUAL TABLE IF NOT EXISTS pages_fts USING fts5(
    title, text, content='pages', content_rowid='id',
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE IF NOT EXISTS titles_fts USING fts5(
    title, content='pages', content_rowid='id',
    tokenize='trigram remove_diacritics 1'
);
CREATE VIRTUAL TABLE IF NOT EXISTS titles_vocab USING fts5vocab(titles_fts, 'row');
`;

/** The lookup key of a title: lowercase, underscores as spaces, spaces collapsed. */
export function titleKey(title: string): string {
    return title.normalize("NFKC").toLowerCase().replace(/_/g, " ").replace(/\s+/g, " ").trim();
}

export interface SearchHit {
    title: string;
    /** A short window of the page around the matched words. */
    snippet: string;
    /** BM25 score, lower is better (SQLite's convention). */
    score: number;
}

const STOP_WORDS = new Set(("a an and are as at be by for from has have he her his in is it its of on or " +
    "she that the their they this to was were what when where which who whom whose why will with").split(" "));

/** A read-only corpus database as the tools use it. */
export class Corpus {
    readonly file: string;
    private readonly db: Database.Database;
    private readonly byTitle: Database.Statement;
    private readonly byKey: Database.Statement;
    private readonly searchStatement: Database.Statement;
    private readonly trigramRanked: Database.Statement;
    private readonly trigramAny: Database.Statement;
    private readonly trigramCounts: Database.Statement;
    private readonly phraseStatement: Database.Statement;

    private constructor(file: string, db: Database.Database) {
        this.file = file;
        this.db = db;
        this.byTitle = db.prepare("SELECT title, text, sentences FROM pages WHERE title = ?");
        this.byKey = db.prepare("SELECT title, text, sentences FROM pages WHERE key = ? ORDER BY id LIMIT 1");
        this.searchStatement = db.prepare(`
            SELECT p.title AS title, snippet(pages_fts, 1, '', '', '...', 40) AS snippet,
                   bm25(pages_fts, 4.0, 1.0) AS score
            FROM pages_fts JOIN pages p ON p.id = pages_fts.rowid
            WHERE pages_fts MATCH ? ORDER BY score LIMIT ?`);
        this.trigramRanked = db.prepare(`SELECT p.title AS title FROM titles_fts JOIN pages p ON p.id = titles_fts.rowid
            WHERE titles_fts MATCH ? ORDER BY rank LIMIT ?`);
        // Unranked: stops after LIMIT rows instead of scoring every match.
        this.trigramAny = db.prepare(`SELECT p.title AS title FROM titles_fts JOIN pages p ON p.id = titles_fts.rowid
            WHERE titles_fts MATCH ? LIMIT ?`);
        this.trigramCounts = db.prepare("SELECT term, doc FROM titles_vocab WHERE term = ?");
        this.phraseStatement = db.prepare(`SELECT p.title AS title, p.text AS text, p.sentences AS sentences
            FROM pages_fts JOIN pages p ON p.id = pages_fts.rowid WHERE pages_fts MATCH ? LIMIT ?`);
    }

    /** Opens a corpus database read-only. Missing file or wrong layout: InputError. */
    static open(file: string): Corpus {
        if (!fs.existsSync(file))
            throw new InputError(`corpus database not found: ${file}`, { hint: "create it with: autoact corpus import FILE --db " + file });
        let db: Database.Database;
        try {
            db = new Database(file, { readonly: true, fileMustExist: true });
            const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string } | undefined;
            if (row == null || Number(row.value) !== CORPUS_SCHEMA_VERSION) {
                db.close();
                throw new InputError(`${file}: corpus schema version ${row?.value ?? "missing"}, expected ${CORPUS_SCHEMA_VERSION}`);
            }
        } catch (error) {
            if (error instanceof InputError)
                throw error;
            throw new InputError(`${file}: not a corpus database (${(error as Error).message})`);
        }
        return new Corpus(file, db);
    }

    pageCount(): number {
        return (this.db.prepare("SELECT count(*) AS n FROM pages").get() as { n: number }).n;
    }

    /** The page whose title is exactly `title`, else the one whose normalized title matches. */
    getPage(title: string): CorpusPage | undefined {
        const row = (this.byTitle.get(title.trim()) ?? this.byKey.get(titleKey(title))) as PageRow | undefined;
        return row == null ? undefined : rowToPage(row);
    }

    /**
     * Titles close to `query`: candidates from the rarest trigrams of the query and from its
     * words, ranked by trigram similarity of the normalized titles.
     */
    similarTitles(query: string, limit = 5): string[] {
        const key = titleKey(query);
        if (key.length === 0)
            return [];
        const candidates = new Set<string>();
        const add = (match: string, ranked: boolean, count: number) => {
            const statement = ranked ? this.trigramRanked : this.trigramAny;
            for (const row of statement.all(match, count) as { title: string }[])
                candidates.add(row.title);
        };
        const quote = (text: string) => `"${text.replace(/"/g, '""')}"`;
        // 1. Titles containing the whole query (substring match: "Badr Hari (kickboxer)").
        if (key.length >= 3)
            add(quote(key), false, 50);
        // 2. Titles containing any of the query's words of 3+ characters.
        for (const word of new Set(key.split(/[^\p{L}\p{N}]+/u).filter((w) => w.length >= 3)))
            add(quote(word), false, 30);
        // 3. Titles sharing the query's rarest trigrams (typos). Common trigrams would make
        //    the ranked OR scan the whole table, so stop adding once they cover many titles.
        const grams = [...trigrams(key)]
            .map((gram) => ({ gram, doc: (this.trigramCounts.get(gram) as { doc: number } | undefined)?.doc ?? 0 }))
            .filter((g) => g.doc > 0)
            .sort((a, b) => a.doc - b.doc);
        const chosen: string[] = [];
        let covered = 0;
        for (const { gram, doc } of grams) {
            if (chosen.length >= 8 || covered + doc > 20_000)
                break;
            chosen.push(quote(gram));
            covered += doc;
        }
        if (chosen.length > 0)
            add(chosen.join(" OR "), true, 200);
        const target = trigrams(key);
        return [...candidates]
            .map((title) => ({ title, score: similarity(target, trigrams(titleKey(title))) }))
            .sort((a, b) => b.score - a.score || a.title.length - b.title.length)
            .slice(0, limit)
            .map((c) => c.title);
    }

    /**
     * Pages whose text has the words of `passage` in its order from the start (its first
     * `words` words as an FTS phrase), under whatever title: candidates for a copy of it.
     */
    pagesWithPhrase(passage: string, words = 12, limit = 20): CorpusPage[] {
        const phrase = (passage.match(/[\p{L}\p{N}]+/gu) ?? []).slice(0, words);
        if (phrase.length === 0)
            return [];
        return (this.phraseStatement.all(`text : "${phrase.join(" ")}"`, limit) as PageRow[]).map(rowToPage);
    }

    /** BM25 search over titles (weighted 4x) and texts, best first. */
    search(query: string, limit = 5): SearchHit[] {
        const terms = ftsTerms(query, true);
        if (terms.length === 0)
            return [];
        const match = terms.map((t) => `"${t}"`).join(" OR ");
        return (this.searchStatement.all(match, limit) as SearchHit[]).map((hit) => ({
            ...hit,
            snippet: hit.snippet.replace(/\s+/g, " ").trim()
        }));
    }

    close(): void {
        if (this.db.open)
            this.db.close();
    }
}

interface PageRow {
    title: string;
    text: string;
    sentences: string;
}

function rowToPage(row: PageRow): CorpusPage {
    return { title: row.title, text: row.text, sentences: JSON.parse(row.sentences) as string[] };
}

/** Words of a query as FTS terms (quotes removed); stop words dropped unless nothing else is left. */
function ftsTerms(query: string, dropStopWords: boolean): string[] {
    const words = query.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
    const unique = [...new Set(words)];
    if (!dropStopWords)
        return unique.slice(0, 32);
    const content = unique.filter((w) => !STOP_WORDS.has(w));
    return (content.length > 0 ? content : unique).slice(0, 32);
}

function trigrams(text: string): Set<string> {
    const grams = new Set<string>();
    for (let i = 0; i + 3 <= text.length; i++)
        grams.add(text.slice(i, i + 3));
    if (grams.size === 0 && text.length > 0)
        grams.add(text);
    return grams;
}

/** Dice coefficient of two trigram sets. */
function similarity(a: Set<string>, b: Set<string>): number {
    if (a.size === 0 || b.size === 0)
        return 0;
    let shared = 0;
    for (const gram of a)
        if (b.has(gram))
            shared++;
    return (2 * shared) / (a.size + b.size);
}
