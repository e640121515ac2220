import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { commands } from "../../src/cli/commands/index.js";

const packageRoot = path.resolve(import.meta.dirname, "..", "..");

/** The first word of each command's yargs declaration: "corpus <command>" -> "corpus". */
const commandNames = commands.map((c) => String(c.command).split(" ")[0]!);

/** The commands the README's Commands table has a row for: "| `autoact corpus import ..." -> "corpus". */
function readmeCommandNames(): string[] {
    const readme = fs.readFileSync(path.join(packageRoot, "README.md"), "utf8");
    const table = readme.split("\n## Commands\n")[1]?.split("\n## ")[0] ?? "";
    return [...table.matchAll(/^\| `autoact ([a-z-]+)/gm)].map((m) => m[1]!);
}

describe("the README's Commands table", () => {
    it("has a row for every CLI command, and none for a command that does not exist", () => {
        expect(commandNames.length).toBeGreaterThan(10);
        expect([...new Set(readmeCommandNames())].sort()).toEqual([...commandNames].sort());
    });
});
