import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Corpus } from "../../src/tools/corpus.js";
import { importCorpus } from "../../src/tools/corpus-import.js";
import { createToolLibrary, type ToolLibrary } from "../../src/tools/library.js";
import { ToolSession } from "../../src/tools/types.js";
import { InputError } from "../../src/util/errors.js";
import { packageRoot } from "../../src/util/package.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-corpus-"));
const pagesFile = path.join(tmp, "pages.jsonl");
const dbFile = path.join(tmp, "corpus.sqlite");

const PAGES = [
    { title: "Milhouse Van Houten", text: "Milhouse Mussolini Van Houten is a fictional character in the animated television series The Simpsons. He is voiced by Pamela Hayden. Milhouse is Bart Simpson's best friend.\n\nMilhouse was named after Richard Milhous Nixon. Matt Groening chose the name because it was unfortunate." },
    { title: "Richard Nixon", text: "Richard Milhous Nixon was the 37th president of the United States. He served from 1969 until 1974. Nixon resigned after the Watergate scandal." },
    { title: "The Simpsons", text: "The Simpsons is an American animated sitcom created by Matt Groening for the Fox Broadcasting Company. The series is set in the town of Springfield." },
    { title: "Springfield (The Simpsons)", text: "Springfield is the fictional town where The Simpsons live. Its state is never named." },
    { title: "Marie Curie", text: "Marie Curie was a physicist and chemist who conducted pioneering research on radioactivity. She was the first woman to win a Nobel Prize." },
    { title: "Nixon (film)", sentences: ["Nixon is a 1995 American biographical film.", "It was directed by Oliver Stone."] }
];

let library: ToolLibrary;

beforeAll(async () => {
    fs.writeFileSync(pagesFile, PAGES.map((p) => JSON.stringify(p)).join("\n") + "\n\n");
    const result = await importCorpus({ file: pagesFile, db: dbFile });
    expect(result).toMatchObject({ format: "jsonl", records: 6, pagesAdded: 6, duplicates: 0, totalPages: 6 });
    library = createToolLibrary({ corpusDb: dbFile });
});

afterAll(() => {
    library?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
});

describe("Retrieve", () => {
    it("returns the first paragraph of an exact title and ignores case and underscores", async () => {
        const session = new ToolSession();
        const result = await library.execute("Retrieve[Milhouse Van Houten]", session);
        expect(result.ok).toBe(true);
        expect(result.observation).toMatch(/^Milhouse Mussolini Van Houten is a fictional character/);
        expect(result.observation).not.toContain("Richard Milhous Nixon");
        expect(session.state.page?.title).toBe("Milhouse Van Houten");
        const lower = await library.execute("Retrieve[milhouse_van_houten]", new ToolSession());
        expect(lower.observation).toMatch(/^Milhouse Mussolini/);
        const stop = await library.execute("Retrieve[Milhouse Van Houten.]", new ToolSession());
        expect(stop.observation).toMatch(/^Milhouse Mussolini/);
        // a degenerate argument is not repeated whole into the history
        const long = await library.execute(`Retrieve[${"x".repeat(100_000)}]`, new ToolSession());
        expect(long.observation.length).toBeLessThan(400);
    });

    it("offers similar titles when the title is not exact", async () => {
        const session = new ToolSession();
        const result = await library.execute("Retrieve[Milhous Van Houton]", session);
        expect(result.ok).toBe(false);
        expect(result.observation).toMatch(/^Could not find Milhous Van Houton\. Similar: \['Milhouse Van Houten'/);
        expect(session.state.page).toBeUndefined();
        const nixon = await library.execute("Retrieve[Nixon]", new ToolSession());
        expect(nixon.observation).toContain("'Nixon (film)'");
        expect(nixon.observation).toContain("'Richard Nixon'");
    });
});

describe("Lookup", () => {
    it("walks the matching sentences of the last retrieved page with a cursor", async () => {
        const session = new ToolSession();
        expect((await library.execute("Lookup[Nixon]", session)).observation).toMatch(/^No page has been retrieved yet/);
        await library.execute("Retrieve[Milhouse Van Houten]", session);
        expect((await library.execute("Lookup[milhouse]", session)).observation).toBe("(Result 1 / 3) Milhouse Mussolini Van Houten is a fictional character in the animated television series The Simpsons.");
        expect((await library.execute("Lookup[milhouse]", session)).observation).toBe("(Result 2 / 3) Milhouse is Bart Simpson's best friend.");
        // A new keyword starts a new cursor.
        expect((await library.execute("Lookup[Groening]", session)).observation).toBe("(Result 1 / 1) Matt Groening chose the name because it was unfortunate.");
        expect((await library.execute("Lookup[Groening]", session)).observation).toMatch(/^No more results for "Groening"/);
        expect((await library.execute("Lookup[Watergate]", session)).observation).toMatch(/^No sentence in Milhouse Van Houten contains "Watergate"/);
        // A new Retrieve resets the cursor.
        await library.execute("Retrieve[Richard Nixon]", session);
        expect((await library.execute("Lookup[Watergate]", session)).observation).toBe("(Result 1 / 1) Nixon resigned after the Watergate scandal.");
    });

    it("keeps the sentences given in a {title, sentences} page", async () => {
        const session = new ToolSession();
        await library.execute("Retrieve[Nixon (film)]", session);
        expect((await library.execute("Lookup[Stone]", session)).observation).toBe("(Result 1 / 1) It was directed by Oliver Stone.");
    });

    it("works after Search, over the pages found, best first (as in the original)", async () => {
        const session = new ToolSession();
        const found = await library.execute("Search[Watergate scandal president]", session);
        expect(found.observation.split("\n")[0]).toMatch(/^1\. Richard Nixon:/);
        expect((await library.execute("Lookup[resigned]", session)).observation).toBe("(Result 1 / 1) Nixon resigned after the Watergate scandal.");
        expect((await library.execute("Lookup[1969]", session)).observation).toBe("(Result 1 / 1) He served from 1969 until 1974.");
        // A search without results leaves nothing to look in; Retrieve then takes over again.
        await library.execute("Search[zzzqqq]", session);
        expect((await library.execute("Lookup[Nixon]", session)).observation).toMatch(/^No page has been retrieved yet/);
        await library.execute("Retrieve[Marie Curie]", session);
        expect((await library.execute("Lookup[Nobel]", session)).observation).toBe("(Result 1 / 1) She was the first woman to win a Nobel Prize.");
    });
});

describe("Search", () => {
    it("ranks the page that matches the query best first", async () => {
        const result = await library.execute("Search[first woman Nobel Prize]", new ToolSession());
        expect(result.observation.split("\n")[0]).toMatch(/^1\. Marie Curie: .*Nobel Prize/);
        const town = await library.execute("Search[Springfield town]", new ToolSession());
        expect(town.observation.split("\n")[0]).toMatch(/^1\. Springfield \(The Simpsons\)/);
        expect((await library.execute("Search[zzzqqq]", new ToolSession())).observation).toBe('No results for "zzzqqq".');
        // Query syntax characters are not FTS operators.
        expect((await library.execute('Search["Nixon" AND (OR]', new ToolSession())).ok).toBe(true);
    });
});

describe("importCorpus", () => {
    it("adds to an existing database and skips titles it already has", async () => {
        const extra = path.join(tmp, "extra.jsonl");
        fs.writeFileSync(extra, [
            { title: "Marie Curie", text: "Duplicate." },
            { title: "Pierre Curie", text: "Pierre Curie was a French physicist." },
            { title: "Blank", text: "  " },
            { title: "No sentences", sentences: [" "] }
        ].map((page) => JSON.stringify(page)).join("\n") + "\n");
        const db = path.join(tmp, "append.sqlite");
        await importCorpus({ file: pagesFile, db });
        const result = await importCorpus({ file: extra, db });
        expect(result).toMatchObject({ pagesAdded: 1, duplicates: 1, emptyPages: 2, totalPages: 7 });
        const corpus = Corpus.open(db);
        expect(corpus.getPage("Marie Curie")?.text).toMatch(/^Marie Curie was a physicist/);
        expect(corpus.getPage("Blank")).toBeUndefined();
        corpus.close();
    });

    it("rejects a malformed line naming file and line, and leaves the old database untouched", async () => {
        const bad = path.join(tmp, "bad.jsonl");
        fs.writeFileSync(bad, JSON.stringify({ title: "Ok", text: "Fine." }) + "\n{\"title\": \"Broken\", \"text\": \n");
        const db = path.join(tmp, "kept.sqlite");
        await importCorpus({ file: pagesFile, db });
        const before = fs.readFileSync(db);
        await expect(importCorpus({ file: bad, db })).rejects.toThrow(new RegExp(`^${escape(bad)}:2: invalid JSON`));
        expect(fs.readFileSync(db).equals(before)).toBe(true);
        expect(fs.readdirSync(tmp).filter((f) => f.endsWith(".tmp"))).toEqual([]);
        const missingKey = path.join(tmp, "nokey.jsonl");
        fs.writeFileSync(missingKey, JSON.stringify({ title: "A", text: "x" }) + "\n" + JSON.stringify({ title: "B" }) + "\n");
        await expect(importCorpus({ file: missingKey, db: path.join(tmp, "never.sqlite") })).rejects.toThrow(`${missingKey}:2: key "text" must be a string`);
        expect(fs.existsSync(path.join(tmp, "never.sqlite"))).toBe(false);
        const empty = path.join(tmp, "empty.jsonl");
        fs.writeFileSync(empty, "\n");
        await expect(importCorpus({ file: empty, db: path.join(tmp, "never.sqlite") })).rejects.toBeInstanceOf(InputError);
    });

    it("creates an empty corpus from an empty input only when asked to", async () => {
        const empty = path.join(tmp, "nothing.jsonl");
        fs.writeFileSync(empty, "");
        const db = path.join(tmp, "empty.sqlite");
        expect(await importCorpus({ file: empty, db, allowEmpty: true })).toMatchObject({ pagesAdded: 0, totalPages: 0 });
        const lib = createToolLibrary({ corpusDb: db });
        expect((await lib.execute("Retrieve[Anything]", new ToolSession())).observation).toBe("Could not find Anything. Similar: [].");
        expect((await lib.execute("Search[anything]", new ToolSession())).observation).toBe('No results for "anything".');
        lib.close();
    });

    it("imports a generated JSONL of 20k pages and finds pages in it", async () => {
        const file = path.join(tmp, "generated.jsonl");
        const lines: string[] = [];
        for (let i = 0; i < 20_000; i++)
            lines.push(JSON.stringify({ title: `Entity ${i}`, text: `Entity ${i} is item number ${i}. It belongs to group g${i % 97}. Its code is c${i * 7}.` }));
        fs.writeFileSync(file, lines.join("\n"));
        const db = path.join(tmp, "generated.sqlite");
        const result = await importCorpus({ file, db, batchSize: 3000 });
        expect(result.pagesAdded).toBe(20_000);
        const corpus = Corpus.open(db);
        expect(corpus.getPage("Entity 12345")?.sentences).toEqual(["Entity 12345 is item number 12345.", "It belongs to group g26.", "Its code is c86415."]);
        expect(corpus.search("c86415", 1)[0]?.title).toBe("Entity 12345");
        expect(corpus.similarTitles("Entity 1234", 1)).toEqual(["Entity 1234"]);
        corpus.close();
    });
});

describe("corpus sources of the dataset descriptors", () => {
    it("scienceqa-problems: train-split lectures (once per skill) and solutions become pages; test problems stay out", async () => {
        const problems = {
            "1": { question: "Which is a magnet?", split: "train", skill: "Identify magnets", lecture: "Magnets attract iron. A magnet has two poles.", solution: "The paper clip is made of iron, so a magnet attracts it." },
            "2": { question: "Which sticks to a magnet?", split: "train", skill: "Identify magnets", lecture: "Magnets attract iron. A magnet has two poles.", solution: "Steel contains iron." },
            "3": { question: "Which ocean is largest?", split: "test", skill: "Oceans", lecture: "The Pacific is the largest ocean.", solution: "The Pacific." }
        };
        const file = path.join(tmp, "problems.json");
        fs.writeFileSync(file, JSON.stringify(problems));
        const db = path.join(tmp, "scienceqa.sqlite");
        const result = await importCorpus({ file, db, format: "scienceqa-problems" });
        expect(result).toMatchObject({ format: "scienceqa-problems", pagesAdded: 3, totalPages: 3 });
        const corpus = Corpus.open(db);
        expect(corpus.getPage("Identify magnets")?.sentences).toEqual(["Magnets attract iron.", "A magnet has two poles."]);
        expect(corpus.getPage("Identify magnets: solution 2")?.text).toBe("Which sticks to a magnet? Steel contains iron.");
        expect(corpus.search("Pacific ocean", 3)).toEqual([]);
        corpus.close();
    });

    it("wiki-abstracts: reads the dump's .tar.bz2 of bz2 JSONL files through tar and bzip2, links stripped", async () => {
        const dump = path.join(tmp, "dump");
        fs.mkdirSync(path.join(dump, "AA"), { recursive: true });
        const lines = (pages: object[]) => pages.map((p) => JSON.stringify(p)).join("\n") + "\n";
        fs.writeFileSync(path.join(dump, "AA", "wiki_00"), lines([
            { id: "12", url: "https://en.wikipedia.org/wiki?curid=12", title: "Anarchism", text: ["Anarchism is a <a href=\"political%20philosophy\">political philosophy</a>.", " It rejects hierarchy."] }
        ]));
        fs.writeFileSync(path.join(dump, "AA", "wiki_01"), lines([
            { id: "25", title: "Autism", text: [["Autism is a developmental condition."]] },
            { id: "39", title: "Empty", text: [] }
        ]));
        execFileSync("bzip2", [path.join(dump, "AA", "wiki_00"), path.join(dump, "AA", "wiki_01")]);
        const archive = path.join(tmp, "abstracts.tar.bz2");
        execFileSync("tar", ["-cjf", archive, "-C", dump, "AA"]);
        const db = path.join(tmp, "wiki.sqlite");
        const result = await importCorpus({ file: archive, db, format: "wiki-abstracts" });
        expect(result).toMatchObject({ format: "wiki-abstracts", records: 3, pagesAdded: 2, emptyPages: 1 });
        const corpus = Corpus.open(db);
        expect(corpus.getPage("Anarchism")?.sentences).toEqual(["Anarchism is a political philosophy.", "It rejects hierarchy."]);
        expect(corpus.getPage("Autism")?.text).toBe("Autism is a developmental condition.");
        corpus.close();
        await expect(importCorpus({ file: pagesFile, db: path.join(tmp, "x.sqlite"), format: "wiki-abstracts" })).rejects.toThrow(/tar\/bzip2 failed/);
    });
});

describe("without a corpus", () => {
    it("says so instead of failing", async () => {
        const bare = createToolLibrary();
        expect((await bare.execute("Retrieve[x]", new ToolSession())).observation).toMatch(/^No corpus is configured/);
        expect(() => createToolLibrary({ corpusDb: path.join(tmp, "missing.sqlite") })).toThrow(/corpus database not found/);
    });
});

const shared = path.resolve(packageRoot, "../shared/datasets/hotpotqa");
const hasShared = fs.existsSync(path.join(shared, "easy.jsonl"));
if (!hasShared)
    console.log(`skipping the shared HotpotQA import: ${shared} is absent`);

describe.skipIf(!hasShared)("HotpotQA import (../shared)", () => {
    it("turns the context paragraphs of the BOLAA files into pages, deduplicated by title", async () => {
        const db = path.join(tmp, "hotpotqa.sqlite");
        const easy = await importCorpus({ file: path.join(shared, "easy.jsonl"), db });
        expect(easy.format).toBe("hotpotqa");
        expect(easy.records).toBe(100);
        const medium = await importCorpus({ file: path.join(shared, "medium.jsonl"), db });
        expect(medium.totalPages).toBe(easy.totalPages + medium.pagesAdded);
        const lib = createToolLibrary({ corpusDb: db });
        const session = new ToolSession();
        const page = await lib.execute("Retrieve[Badr Hari]", session);
        expect(page.observation).toMatch(/^Badr Hari .* is a Moroccan-Dutch super heavyweight kickboxer/);
        expect((await lib.execute("Lookup[controversies]", session)).observation).toMatch(/^\(Result 1 \/ 1\) .*best kickboxer in the world/);
        expect((await lib.execute("Retrieve[Badr Harri]", new ToolSession())).observation).toMatch(/^Could not find Badr Harri\. Similar: \['Badr Hari'/);
        lib.close();
        // Ranking sanity: a question's own text finds one of its gold paragraphs in the top 3
        // (measured: 97 of the 100 easy questions over the easy+medium corpus).
        const corpus = Corpus.open(db);
        const questions = fs.readFileSync(path.join(shared, "easy.jsonl"), "utf8").trim().split("\n")
            .map((line) => JSON.parse(line) as { question: string; supporting_facts: [string, number][] });
        const found = questions.filter((q) => corpus.search(q.question, 3).some((hit) => q.supporting_facts.some(([title]) => title === hit.title)));
        expect(found.length).toBeGreaterThanOrEqual(90);
        corpus.close();
    });

    it("reads the official JSON array shape as well", async () => {
        const rows = fs.readFileSync(path.join(shared, "easy.jsonl"), "utf8").trim().split("\n").slice(0, 5).map((line) => {
            const { id, ...rest } = JSON.parse(line) as Record<string, unknown>;
            return { _id: id, ...rest } as Record<string, unknown>;
        });
        const file = path.join(tmp, "official.json");
        fs.writeFileSync(file, JSON.stringify(rows, null, 1));
        const result = await importCorpus({ file, db: path.join(tmp, "official.sqlite") });
        expect(result.format).toBe("hotpotqa");
        expect(result.records).toBe(5);
        expect(result.totalPages).toBe(new Set(rows.flatMap((r) => (r.context as [string][]).map((c) => c[0]))).size);
    });
});

function escape(text: string): string {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
