import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/pipeline/config.js";
import { defaultConfig } from "../../src/pipeline/config-schema.js";
import { InputError } from "../../src/util/errors.js";
import { packageRoot } from "../../src/util/package.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-config-"));
function write(name: string, text: string): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
}
function errorOf(fn: () => unknown): InputError {
    try {
        fn();
    } catch (error) {
        expect(error).toBeInstanceOf(InputError);
        return error as InputError;
    }
    throw new Error("expected an InputError");
}

describe("pipeline config", () => {
    it("loads every shipped pipeline file", () => {
        for (const name of ["hotpotqa.yaml", "scienceqa.yaml", "custom-task.example.yaml"]) {
            const { config } = loadConfig(path.join(packageRoot, "pipelines", name));
            expect(config.name).not.toBe("");
            expect(config.data.eval.length).toBeGreaterThan(0);
        }
    });

    it("merges a file over the defaults", () => {
        const { config } = loadConfig(write("a.yaml", "name: t\nsynth:\n  max_steps: 7\n"));
        expect(config.synth.max_steps).toBe(7);
        expect(config.synth.temperature).toBe(defaultConfig.synth.temperature);
        expect(config.train).toEqual(defaultConfig.train);
    });

    it("names the file, line and key of an unknown key, with a suggestion", () => {
        const error = errorOf(() => loadConfig(write("b.yaml", "name: t\nsynth:\n  max_step: 7\n")));
        expect(error.message).toBe(`${path.join(dir, "b.yaml")}:3: unknown key "synth.max_step" (did you mean "max_steps"?)`);
    });

    it("rejects values of the wrong type or outside an enum, with the line", () => {
        expect(errorOf(() => loadConfig(write("c.yaml", "synth:\n  max_steps: many\n"))).message).toMatch(/c\.yaml:2: "synth\.max_steps" must be a number/);
        expect(errorOf(() => loadConfig(write("d.yaml", "train:\n  targets: [attn_q, mlp]\n"))).message).toMatch(/d\.yaml:2: "train\.targets\[\]" must be one of/);
        expect(errorOf(() => loadConfig(write("e.yaml", "synth:\n  max_steps: 2.5\n"))).message).toMatch(/whole number/);
        expect(errorOf(() => loadConfig(write("f.yaml", "data:\n  eval:\n    - {name: x, file: y, color: red}\n"))).message).toMatch(/f\.yaml:\d: "data\.eval" \[0\] has an unknown key "color"/);
    });

    it("reports malformed YAML with its line", () => {
        expect(errorOf(() => loadConfig(write("g.yaml", "name: t\nsynth: [\n  max_steps: 1\n"))).message).toMatch(/g\.yaml:\d+: malformed YAML/);
    });

    it("reports a missing file", () => {
        expect(errorOf(() => loadConfig(path.join(dir, "missing.yaml"))).message).toMatch(/pipeline config not found/);
    });

    it("applies --set overrides with the same checks", () => {
        const file = write("h.yaml", "name: t\n");
        const { config } = loadConfig(file, { set: ["synth.max_steps=3", "train.targets=[attn_q, ffn_up]", "name=123"] });
        expect(config.synth.max_steps).toBe(3);
        expect(config.train.targets).toEqual(["attn_q", "ffn_up"]);
        expect(config.name).toBe("123");
        expect(errorOf(() => loadConfig(file, { set: ["synth.nope=1"] })).message).toMatch(/--set synth\.nope: unknown key/);
        expect(errorOf(() => loadConfig(file, { set: ["synth.max_steps"] })).message).toMatch(/expected KEY=VALUE/);
    });

    it("makes file paths absolute: a file's against its folder, --set's against the working directory", () => {
        fs.mkdirSync(path.join(dir, "pipelines"), { recursive: true });
        const file = write("pipelines/paths.yaml", "name: p\nmodel:\n  path: ../models/m.gguf\ndata:\n  search: [data, /abs/data]\n");
        const fromFile = loadConfig(file).config;
        expect(fromFile.model.path).toBe(path.join(dir, "models", "m.gguf"));
        expect(fromFile.data.search).toEqual([path.join(dir, "pipelines", "data"), "/abs/data"]);
        // typed on the command line: relative to where the command runs, as --model and --data are
        const fromSet = loadConfig(file, { set: ["model.path=here.gguf", "data.search=[mine]"] }).config;
        expect(fromSet.model.path).toBe(path.resolve("here.gguf"));
        expect(fromSet.data.search).toEqual([path.resolve("mine")]);
        // a preset name or a remote source is not a path
        for (const source of ["default", "hf:org/repo/model.gguf", "https://example.com/m.gguf"])
            expect(loadConfig(file, { set: [`model.path=${source}`] }).config.model.path).toBe(source);
    });

    it("reads the remote backend's keys and checks them", () => {
        const file = write("remote.yaml", "name: r\nmodel:\n  backend: openai\n  endpoints: [http://127.0.0.1:8080, http://10.0.0.2:8000/v1]\n  server: vllm\n");
        const { config } = loadConfig(file);
        expect(config.model).toMatchObject({ backend: "openai", endpoints: ["http://127.0.0.1:8080", "http://10.0.0.2:8000/v1"], server: "vllm", timeout_s: 300, retries: 4 });
        expect(errorOf(() => loadConfig(file, { set: ["model.backend=grpc"] })).message).toMatch(/model\.backend/);
        expect(errorOf(() => loadConfig(file, { set: ["model.timeout_s=0"] })).message).toMatch(/model\.timeout_s.*must be more than 0 seconds/);
        expect(errorOf(() => loadConfig(file, { set: ["model.retries=-1"] })).message).toMatch(/model\.retries/);
    });

    it("refuses keys that reach Object.prototype, anywhere, with the file and line; the process is untouched", () => {
        const cases: [string, RegExp][] = [
            ["__proto__:\n  toString: 1\n", /proto\.yaml:1: the key "__proto__" is not allowed/],
            ["name: x\nconstructor: 1\n", /proto\.yaml:2: the key "constructor" is not allowed/],
            ["synth:\n  prototype: 3\n", /proto\.yaml:2: the key "prototype" is not allowed/],
            ["data:\n  eval:\n    - name: a\n      file: b\n      __proto__: {x: 1}\n", /proto\.yaml:5: the key "__proto__"/]
        ];
        for (const [text, pattern] of cases)
            expect(errorOf(() => loadConfig(write("proto.yaml", text))).message).toMatch(pattern);
        expect(errorOf(() => loadConfig(write("ok.yaml", "name: x\n"), { set: ["synth.__proto__.x=1"] })).message)
            .toMatch(/--set synth\.__proto__\.x: the key "__proto__" is not allowed/);
        expect(({} as Record<string, unknown>).toString).toBe(Object.prototype.toString);
        expect(typeof Object.prototype.toString).toBe("function");
    });

    it("refuses a YAML alias bomb with one line", () => {
        const lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
        for (let i = 0; i < 8; i++)
            lines.push(`${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(", ")}]`);
        const message = errorOf(() => loadConfig(write("bomb.yaml", lines.join("\n") + "\n"))).message;
        expect(message).toMatch(/bomb\.yaml:\d+: malformed YAML: too many alias expansions/);
        expect(message.split("\n")).toHaveLength(1);
    });

    it("range-checks sampling and training values", () => {
        const bad: [string, RegExp][] = [
            ["synth.temperature=-1", /"synth\.temperature" must be at least 0, got -1/],
            ["eval.temperature=-0.5", /"eval\.temperature" must be at least 0/],
            ["synth.top_p=0", /"synth\.top_p" must be greater than 0 and at most 1, got 0/],
            ["eval.top_p=1.5", /"eval\.top_p" must be greater than 0 and at most 1, got 1\.5/],
            ["synth.top_k=-1", /"synth\.top_k" must be at least 0/],
            ["eval.top_k=2.5", /"eval\.top_k" must be a whole number/],
            ["instruct.temperature=[-1, 0.5]", /"instruct\.temperature\[\]" must be at least 0/],
            ["train.alpha=-2", /"train\.alpha" must be a number from/],
            ["train.warmup=2", /"train\.warmup" must be a number from 0 to 1/],
            ["filter.min_f1=-0.1", /"filter\.min_f1" must be at least 0/],
            ["synth.temperature=.nan", /"synth\.temperature" must be a number/]
        ];
        const file = write("ranges.yaml", "name: x\n");
        for (const [set, pattern] of bad)
            expect(errorOf(() => loadConfig(file, { set: [set] })).message, set).toMatch(pattern);
        const ok = loadConfig(file, { set: ["synth.temperature=0", "synth.top_p=1", "eval.top_k=0"] }).config;
        expect([ok.synth.temperature, ok.synth.top_p, ok.eval.top_k]).toEqual([0, 1, 0]);
        expect(errorOf(() => loadConfig(write("ranges2.yaml", "synth:\n  top_p: 2\n"))).message).toMatch(/ranges2\.yaml:2: "synth\.top_p" must be/);
    });
});
