import fs from "node:fs";
import Database from "better-sqlite3";
import { Corpus } from "../tools/corpus.js";
import { importCorpus } from "../tools/corpus-import.js";
import type { Passage } from "../agents/meta-agent.js";
import type { SeededRandom } from "../util/random.js";
import { writeFileAtomicSync } from "../util/fs.js";
import { hashValues } from "./run-dir.js";
import type { StageContext } from "./context.js";

/**
 * The retrieval corpus of a run: `corpus.sqlite` in the run directory, imported from the
 * config's `data.corpus` files the first time a stage needs it (and again only when that
 * list of files changes). An empty list gives an empty corpus: the tools then say so.
 */
export async function ensureRunCorpus(context: StageContext): Promise<string> {
    const db = context.runDir.file("corpus.sqlite");
    const stamp = context.runDir.file("corpus.sqlite.source.json");
    const files = [...new Set(await Promise.all(context.config.data.corpus.map(async (name) =>
        // Split files not at hand: the dataset's official file holds their paragraphs too.
        context.data.find(name) ?? (await context.data.officialFile())?.file ?? context.data.require(name, "corpus file"))))];
    const identity = hashValues(files.map((file) => {
        const stat = fs.statSync(file);
        return [file, stat.size, stat.mtimeMs];
    }));
    if (fs.existsSync(db) && fs.existsSync(stamp) && JSON.parse(fs.readFileSync(stamp, "utf8")).identity === identity)
        return db;
    fs.rmSync(db, { force: true });
    if (files.length === 0) {
        await importCorpus({ file: emptyJsonl(context), db, format: "jsonl", replace: true, allowEmpty: true });
    }
    for (const [i, file] of files.entries()) {
        const result = await importCorpus({ file, db, replace: i === 0 });
        context.log(`corpus: ${file}: ${result.pagesAdded} pages added (${result.totalPages} in all, ${result.pagesPerSecond.toFixed(0)} pages/s)`);
    }
    writeFileAtomicSync(stamp, JSON.stringify({ identity, files }) + "\n");
    return db;
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
