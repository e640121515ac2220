import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readSeeds } from "../../src/pipeline/seeds.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-seeds-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("readSeeds", () => {
    it("reads a seeds file written with a UTF-8 BOM", () => {
        const file = path.join(dir, "seeds.json");
        fs.writeFileSync(file, `\uFEFF${JSON.stringify([{ Question: "Is Rome older than Athens?", Answer: "no" }])}`);
        expect(readSeeds(file)).toEqual([{ question: "Is Rome older than Athens?", answer: "no" }]);
    });

    it("a missing seeds file: says so, not 'not a JSON file'", () => {
        const missing = path.join(dir, "absent.json");
        expect(() => readSeeds(missing)).toThrow(`seeds file not found: ${missing}`);
    });
});
