import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { Corpus } from "../../src/tools/corpus.js";
import { packageRoot } from "../../src/util/package.js";
import { runCliProcess } from "../helpers/cli.js";

const cli = path.join(packageRoot, "dist/src/cli/main.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-corpus-cli-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function run(...args: string[]) {
    return execa("node", [cli, ...args], { reject: false, cwd: tmp });
}

describe.skipIf(!fs.existsSync(cli))("autoact corpus import (built CLI)", () => {
    it("imports a JSONL file and reports what it did", async () => {
        const file = path.join(tmp, "pages.jsonl");
        fs.writeFileSync(file, [{ title: "Alpha", text: "Alpha is first. It leads." }, { title: "Beta", text: "Beta is second." }].map((p) => JSON.stringify(p)).join("\n"));
        const db = path.join(tmp, "out", "corpus.sqlite");
        const result = await run("corpus", "import", file, "--db", db);
        expect(result.exitCode).toBe(0);
        expect(result.stdout).toMatch(/added 2 pages \(skipped: 0 duplicate titles, 0 without text\) from 2 jsonl records; 2 pages in all/);
        const corpus = Corpus.open(db);
        expect(corpus.getPage("alpha")?.sentences).toEqual(["Alpha is first.", "It leads."]);
        corpus.close();
        const again = await run("corpus", "import", file, "--db", db, "--replace");
        expect(again.stdout).toMatch(/added 2 pages .* 2 pages in all/);
    });

    it("bad input: one line, exit code 2, no database left behind", async () => {
        const db = path.join(tmp, "bad.sqlite");
        const missing = await run("corpus", "import", path.join(tmp, "absent.jsonl"), "--db", db);
        expect(missing.exitCode).toBe(2);
        expect(missing.stderr.trim()).toBe(`autoact: corpus input file not found: ${path.join(tmp, "absent.jsonl")}`);

        const malformed = path.join(tmp, "malformed.jsonl");
        fs.writeFileSync(malformed, `${JSON.stringify({ title: "A", text: "a" })}\nnot json\n`);
        const bad = await run("corpus", "import", malformed, "--db", db);
        expect(bad.exitCode).toBe(2);
        expect(bad.stderr.trim().split("\n")).toHaveLength(1);
        expect(bad.stderr).toMatch(new RegExp(`^autoact: ${malformed.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:2: invalid JSON`));
        expect(fs.existsSync(db)).toBe(false);
        expect(fs.readdirSync(tmp).filter((f) => f.includes("bad.sqlite"))).toEqual([]);
    });

    it("a pretty-printed JSON object (ScienceQA's problems.json) or a binary file: one line that says what it is", async () => {
        const problems = path.join(tmp, "problems.json");
        fs.writeFileSync(problems, JSON.stringify({ 5890: { question: "Which is a mammal?", split: "train", solution: "A whale." } }, null, 4));
        const object = await run("corpus", "import", problems, "--db", path.join(tmp, "p.sqlite"));
        expect(object.exitCode).toBe(2);
        expect(object.stderr.trim()).toBe(`autoact: ${problems}: a single JSON object, not JSONL or a JSON list (for ScienceQA's problems.json use --format scienceqa-problems)`);
        const gzip = path.join(tmp, "pages.jsonl.gz");
        fs.writeFileSync(gzip, Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x7b, 0x22, 0xff, 0x00, 0x0a]));
        const binary = await run("corpus", "import", gzip, "--db", path.join(tmp, "p.sqlite"));
        expect(binary.exitCode).toBe(2);
        expect(binary.stderr.trim()).toBe(`autoact: ${gzip}: not a JSON file (binary content)`);
    });

    it("--db naming a folder: one line that names the folder, before any import", async () => {
        const file = path.join(tmp, "one.jsonl");
        fs.writeFileSync(file, JSON.stringify({ title: "A", text: "a." }));
        const folder = path.join(tmp, "db-folder");
        fs.mkdirSync(folder);
        const result = await run("corpus", "import", file, "--db", folder);
        expect(result.exitCode).toBe(2);
        expect(result.stderr.trim()).toBe(`autoact: corpus database ${folder} is a folder; name a file in it (e.g. ${path.join(folder, "corpus.sqlite")})`);
    });

    it("an interrupt mid-import leaves no temporary database", { timeout: 60_000 }, async () => {
        const file = path.join(tmp, "many.jsonl");
        fs.writeFileSync(file, Array.from({ length: 40_000 }, (_, i) => JSON.stringify({ title: `Page ${i}`, text: `Page ${i} says ${i}.` })).join("\n"));
        const folder = path.join(tmp, "interrupted");
        fs.mkdirSync(folder);
        const result = await runCliProcess(["corpus", "import", file, "--db", path.join(folder, "c.sqlite"), "--batch-size", "200"],
            { cwd: tmp, interrupt: { when: () => fs.readdirSync(folder).length > 0, signal: "SIGINT" } });
        expect(result.code, result.stderr).toBe(130);
        expect(fs.readdirSync(folder)).toEqual([]);
    });

    it("imports a corpus a dataset descriptor names (hotpotqa:train-paragraphs) from a --data folder", async () => {
        const dataDir = path.join(tmp, "data");
        fs.mkdirSync(dataDir, { recursive: true });
        const questions = [
            { _id: "t1", question: "q1?", answer: "a", context: [["Gamma", [" Gamma is third.", " It follows Beta."]], ["Delta", [" Delta is fourth."]]] },
            { _id: "t2", question: "q2?", answer: "b", context: [["Delta", [" Delta is fourth."]], ["Epsilon", [" Epsilon is fifth."]]] }
        ];
        fs.writeFileSync(path.join(dataDir, "hotpot_train_v1.1.json"), JSON.stringify(questions));
        const db = path.join(tmp, "train.sqlite");
        const result = await run("corpus", "import", "hotpotqa:train-paragraphs", "--db", db, "--data", dataDir);
        expect(result.exitCode, result.stderr).toBe(0);
        expect(result.stdout).toMatch(/added 3 pages \(skipped: 1 duplicate titles, 0 without text\) from 2 hotpotqa records/);
        const unknown = await run("corpus", "import", "hotpotqa:no-such-corpus", "--db", db, "--data", dataDir);
        expect(unknown.exitCode).toBe(2);
        expect(unknown.stderr).toMatch(/corpus file "no-such-corpus" not found/);
    });
});
