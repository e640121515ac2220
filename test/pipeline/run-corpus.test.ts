import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ensureRunCorpus } from "../../src/pipeline/corpus.js";
import { loadConfig } from "../../src/pipeline/config.js";
import { DataLocator } from "../../src/pipeline/data-locator.js";
import { RunDir } from "../../src/pipeline/run-dir.js";
import type { StageContext } from "../../src/pipeline/context.js";
import type { ModelSession } from "../../src/pipeline/model-session.js";
import { Corpus } from "../../src/tools/corpus.js";
import { createProgress } from "../../src/util/progress.js";
import { packageRoot } from "../../src/util/package.js";

/** The run's corpus built from a JSONL of passages, several per title (DPR-style). */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-run-corpus-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("ensureRunCorpus", () => {
    it("joins the passages of one title into one page and logs what it joined and skipped", async () => {
        fs.writeFileSync(path.join(dir, "passages.jsonl"), [
            { title: "Angel Falls", text: "Angel Falls is a waterfall in Venezuela." },
            { title: "Venezuela", text: "Venezuela is a country in South America." },
            { title: "Angel Falls", text: "It is the world's tallest uninterrupted waterfall." },
            { title: "Angel Falls", text: "Angel Falls is a waterfall in Venezuela." },
            { title: "Empty", text: "" }
        ].map((p) => JSON.stringify(p)).join("\n") + "\n");
        const { config } = loadConfig(path.join(packageRoot, "pipelines", "hotpotqa.yaml"), { set: ["data.eval=[]", "data.corpus=[passages.jsonl]"] });
        const runDir = new RunDir(path.join(dir, "run"));
        runDir.ensure();
        const lines: string[] = [];
        const context = {
            config, runDir, limit: null,
            data: new DataLocator({ dataDirs: [dir], descriptor: "hotpotqa", cacheDir: path.join(dir, "cache") }),
            model: {} as ModelSession,
            progress: createProgress({ silent: true }),
            log: (line: string) => void lines.push(line)
        } as StageContext;
        const db = await ensureRunCorpus(context);
        expect(lines.find((l) => l.startsWith("corpus: passages.jsonl"))).toMatch(
            /: 2 pages added \(2 in all, \d+ pages\/s\); 1 passages joined to their title's page, 1 duplicate titles skipped, 1 pages without text skipped$/);
        const corpus = Corpus.open(db);
        expect(corpus.getPage("Angel Falls")).toMatchObject({
            text: "Angel Falls is a waterfall in Venezuela. It is the world's tallest uninterrupted waterfall.",
            sentences: ["Angel Falls is a waterfall in Venezuela.", "It is the world's tallest uninterrupted waterfall."]
        });
        expect(corpus.search("tallest uninterrupted").map((hit) => hit.title)).toEqual(["Angel Falls"]); // the joined text is indexed
        corpus.close();
    });
});
