import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { Corpus } from "../../src/tools/corpus.js";
import { packageRoot } from "../../src/util/package.js";

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
        expect(result.stdout).toMatch(/added 2 pages \(0 duplicate titles skipped\) from 2 jsonl records; 2 pages in all/);
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
});
