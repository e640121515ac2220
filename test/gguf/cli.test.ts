import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packageRoot } from "../../src/util/package.js";

// End to end through the built CLI (`npm test` compiles first).
const cli = path.join(packageRoot, "dist/src/cli/main.js");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-gguf-cli-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function run(...args: string[]) {
    const result = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", cwd: dir });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const dims: Record<string, string> = { "n-embd": "64", layers: "2", heads: "4", "kv-heads": "2", ff: "128", ctx: "512" };
const flags = (overrides: Record<string, string> = {}) => Object.entries({ ...dims, ...overrides }).flatMap(([k, v]) => [`--${k}`, v]);
const shape = flags();

describe("autoact model (built CLI)", () => {
    beforeAll(() => {
        if (!fs.existsSync(cli))
            throw new Error(`${cli} is missing: run \`npx tsc -p tsconfig.json\` first (npm test does)`);
    });

    it("synth writes llama f32 and qwen2 q8_0 models; info describes them", () => {
        const llama = path.join(dir, "tiny.gguf");
        const made = run("model", "synth", "--arch", "llama", ...shape, "--type", "f32", "--out", llama);
        expect(made.stderr).toBe("");
        expect(made.code).toBe(0);
        expect(made.stdout).toMatch(/^wrote .*tiny\.gguf: \d+ parameters, \d+ bytes in [\d.]+ s\n$/);

        const qwen = path.join(dir, "tiny-qwen2.gguf");
        expect(run("model", "synth", "--arch", "qwen2", ...shape, "--type", "q8_0", "--seed", "3", "--out", qwen).code).toBe(0);
        const info = run("model", "info", qwen);
        expect(info.code).toBe(0);
        expect(info.stdout).toContain("architecture: qwen2");
        expect(info.stdout).toContain("file type: MOSTLY_Q8_0 (7)");
        expect(info.stdout).toContain("context length: 512");
        expect(info.stdout).toContain("chat template: yes");
        expect(info.stdout).toMatch(/Q8_0 +16 tensors/);
        const json = JSON.parse(run("model", "info", qwen, "--json").stdout) as { metadata: Record<string, unknown>; tensors: unknown[] };
        expect(json.metadata["general.architecture"]).toBe("qwen2");
        expect(json.tensors).toHaveLength(27);

        const preset = path.join(dir, "preset.gguf");
        expect(run("model", "synth", "--preset", "tiny", "--type", "f16", "--out", preset).code).toBe(0);
        expect(run("model", "info", preset).stdout).toContain("file type: MOSTLY_F16 (1)");
    });

    const badShapes: [string, string[], RegExp][] = [
        ["heads not dividing n-embd", ["--arch", "llama", ...flags({ heads: "5", "kv-heads": "5" })], /heads \(5\) must divide n-embd \(64\)/],
        ["kv-heads not dividing heads", ["--arch", "llama", ...flags({ "kv-heads": "3" })], /kv-heads \(3\) must divide heads \(4\)/],
        ["q4_0 row not a block multiple", ["--arch", "llama", ...flags({ ff: "100" }), "--type", "q4_0"], /ff \(100\) must be a multiple of 32/],
        ["unknown arch", ["--arch", "mamba", ...shape], /unknown architecture "mamba"/],
        ["unknown type", ["--arch", "llama", ...shape, "--type", "q5_1"], /unknown model type "q5_1"/],
        ["unknown preset", ["--preset", "huge"], /unknown synthetic preset "huge"/],
        ["non-numeric flag", ["--arch", "llama", ...flags({ layers: "two" })], /^autoact: --layers must be a number, got "two"$/m],
        ["a flag given twice", ["--arch", "llama", ...shape, "--ff", "256"], /--ff is given more than once/],
        ["a vocabulary no GGUF has", ["--arch", "llama", ...shape, "--vocab", "1000000000"], /^autoact: vocab \(1000000000\) must be at most 1048576$/m],
        ["a shape of trillions of parameters", ["--arch", "llama", ...flags({ "n-embd": "100000000" })], /^autoact: the shape makes \d+B parameters: synthetic models stop at 20B$/m]
    ];
    for (const [label, args, pattern] of badShapes) {
        it(`synth: ${label} -> one line, exit 2`, () => {
            const out = path.join(dir, "bad.gguf");
            const result = run("model", "synth", ...args, "--out", out);
            expect(result.code).toBe(2);
            expect(result.stderr).toMatch(pattern);
            expect(result.stderr.trim().split("\n")).toHaveLength(1);
            expect(fs.existsSync(out)).toBe(false);
        });
    }

    it("info: corrupt, truncated or missing files -> one line naming the file, exit 2", () => {
        const good = path.join(dir, "good.gguf");
        expect(run("model", "synth", "--preset", "tiny", "--out", good).code).toBe(0);
        const bytes = fs.readFileSync(good);
        const cases: [string, Buffer | undefined, RegExp][] = [
            ["corrupt.gguf", Buffer.concat([Buffer.from("XXXX"), bytes.subarray(4)]), /bad magic/],
            ["truncated.gguf", bytes.subarray(0, Math.floor(bytes.length / 2)), /truncated/],
            ["text.gguf", Buffer.from("hello, not a model\n"), /not a GGUF file/],
            ["missing.gguf", undefined, /not found/]
        ];
        for (const [name, content, pattern] of cases) {
            const file = path.join(dir, name);
            if (content != null)
                fs.writeFileSync(file, content);
            const result = run("model", "info", file);
            expect(result.code, name).toBe(2);
            expect(result.stderr, name).toMatch(pattern);
            expect(result.stderr, name).toContain(file);
            expect(result.stderr.trim().split("\n"), name).toHaveLength(1);
        }
    });
});
