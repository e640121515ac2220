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

    it("reads the remote backend's keys and checks them", () => {
        const file = write("remote.yaml", "name: r\nmodel:\n  backend: openai\n  endpoints: [http://127.0.0.1:8080, http://10.0.0.2:8000/v1]\n  server: vllm\n");
        const { config } = loadConfig(file);
        expect(config.model).toMatchObject({ backend: "openai", endpoints: ["http://127.0.0.1:8080", "http://10.0.0.2:8000/v1"], server: "vllm", timeout_s: 300, retries: 4 });
        expect(errorOf(() => loadConfig(file, { set: ["model.backend=grpc"] })).message).toMatch(/model\.backend/);
        expect(errorOf(() => loadConfig(file, { set: ["model.timeout_s=0"] })).message).toMatch(/model\.timeout_s.*must be more than 0 seconds/);
        expect(errorOf(() => loadConfig(file, { set: ["model.retries=-1"] })).message).toMatch(/model\.retries/);
    });
});
