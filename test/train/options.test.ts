import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import yargs, { type Argv } from "yargs";
import { afterAll, describe, expect, it } from "vitest";
import { trainCommand } from "../../src/cli/commands/train.js";
import { loadConfig } from "../../src/pipeline/config.js";
import { defaultConfig } from "../../src/pipeline/config-schema.js";
import {
    resolveTrainOptions, trainerArgs, trainOptions, trainOptionsFromCli, trainOptionsFromConfig, type TrainHyperParams, type TrainOptionSpec
} from "../../src/train/index.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-train-options-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const rows: readonly TrainOptionSpec[] = trainOptions;
const files = { trainer: "t", base: "b.gguf", samplesFile: "s.bin", out: "o.gguf" };

/** A valid value of each option that is not its default, as the library, the CLI and YAML spell it. */
function otherValue(option: TrainOptionSpec): { value: unknown; cli: string; yaml: string; flag: string } {
    switch (option.kind) {
        case "int": {
            const v = option.default + 1 <= option.max ? option.default + 1 : option.default - 1;
            return { value: v, cli: String(v), yaml: String(v), flag: String(v) };
        }
        case "float": {
            const v = option.default === option.max ? option.max / 2 : (option.default + option.max) / 2;
            return { value: v, cli: String(v), yaml: String(v), flag: String(v) };
        }
        case "choice": {
            const v = option.choices.find((c) => c !== option.default)!;
            return { value: v, cli: v, yaml: v, flag: v };
        }
        case "list": {
            const v = option.choices.filter((c) => !option.default.includes(c)).slice(0, 2);
            return { value: v, cli: v.join(","), yaml: `[${v.join(", ")}]`, flag: v.join(",") };
        }
    }
}

/** The value following `flag` in an argv (it must occur once). */
function flagValue(args: string[], flag: string): string | undefined {
    const at = args.flatMap((a, i) => (a === flag ? [i] : []));
    expect(at, `${flag} occurs once in ${args.join(" ")}`).toHaveLength(1);
    return args[at[0]! + 1];
}

describe("the trainer's options table", () => {
    it("has unique names in every column", () => {
        for (const column of ["key", "cli", "config", "flag"] as const)
            expect(new Set(rows.map((r) => r[column])).size, column).toBe(rows.length);
    });

    it("puts every option into the trainer's argv, with its default when not given", () => {
        const args = trainerArgs(files);
        expect(args.slice(0, 6)).toEqual(["--base", "b.gguf", "--data", "s.bin", "--out", "o.gguf"]);
        for (const option of rows) {
            const expected = option.kind === "list" ? option.default.join(",") : String(option.default);
            expect(flagValue(args, option.flag), option.flag).toBe(expected);
        }
        const given = Object.fromEntries(rows.map((o) => [o.key, otherValue(o).value])) as TrainHyperParams;
        const withValues = trainerArgs({ ...files, ...given });
        for (const option of rows)
            expect(flagValue(withValues, option.flag), option.flag).toBe(otherValue(option).flag);
    });

    it("passes the warm-up as a fraction of the steps, never as a step count", () => {
        const args = trainerArgs({ ...files, warmup: 0.1 });
        expect(flagValue(args, "--warmup-ratio")).toBe("0.1");
        expect(args).not.toContain("--warmup");
        const { config } = loadConfig(write("warmup.yaml", "train:\n  warmup: 0.1\n"));
        expect(trainOptionsFromConfig(config.train).warmup).toBe(0.1);
    });

    it("gives `autoact train` one flag per option that reaches the argv", async () => {
        const parser = (trainCommand.builder as (y: Argv) => Argv)(yargs([]).strict());
        const argv = rows.flatMap((o) => [`--${o.cli}`, otherValue(o).cli]);
        const parsed = await parser.parseAsync(argv) as Record<string, unknown>;
        const { values, problems } = trainOptionsFromCli(parsed);
        expect(problems).toEqual([]);
        const args = trainerArgs({ ...files, ...values });
        for (const option of rows)
            expect(flagValue(args, option.flag), `--${option.cli} -> ${option.flag}`).toBe(otherValue(option).flag);
        // the defaults yargs fills in, and those the trainer gets for the adapter's shape (unset on
        // the command line, as an --adapter-in brings its own), are the table's
        const defaults = await (trainCommand.builder as (y: Argv) => Argv)(yargs([])).parseAsync([]) as Record<string, unknown>;
        const unset = trainOptionsFromCli(defaults).values;
        expect(rows.filter((o) => o.fromAdapter && (unset as Record<string, unknown>)[o.key] !== undefined)).toEqual([]);
        expect(resolveTrainOptions(unset)).toEqual(trainOptionsFromConfig(defaultConfig.train));
    });

    it("gives the pipeline config one key per option, with the table's default, that reaches the argv", () => {
        expect(Object.keys(defaultConfig.train).sort()).toEqual(rows.map((o) => o.config).sort());
        for (const option of rows)
            expect(defaultConfig.train[option.config as keyof typeof defaultConfig.train], option.config).toEqual(option.default);
        const yaml = `train:\n${rows.map((o) => `  ${o.config}: ${otherValue(o).yaml}`).join("\n")}\n`;
        const { config } = loadConfig(write("all.yaml", yaml));
        const args = trainerArgs({ ...files, ...trainOptionsFromConfig(config.train) });
        for (const option of rows)
            expect(flagValue(args, option.flag), `train.${option.config} -> ${option.flag}`).toBe(otherValue(option).flag);
    });

    it("has the paper's pipeline defaults: effective batch 16 packed into micro-batches of the context length, LoRA dropout 0.05", () => {
        expect(defaultConfig.train).toMatchObject({ batch: 16, grad_accum: 1, batch_tokens: 0, lora_dropout: 0.05, rank: 8, alpha: 16, warmup: 0.03 });
    });

    it("rejects a config value out of range with the file and line", () => {
        for (const option of rows) {
            if (option.kind !== "int" && option.kind !== "float")
                continue;
            const file = write(`range-${option.config}.yaml`, `name: t\ntrain:\n  ${option.config}: ${option.max * 2 + 1}\n`);
            expect(() => loadConfig(file), option.config).toThrow(`${file}:3: "train.${option.config}" must be`);
        }
        const dropout = write("dropout.yaml", "train:\n  lora_dropout: 0.95\n");
        expect(() => loadConfig(dropout)).toThrow(`${dropout}:2: "train.lora_dropout" must be a number from 0 to 0.9, got 0.95`);
        const rank = write("rank.yaml", "train:\n  rank: 2.5\n");
        expect(() => loadConfig(rank)).toThrow(`${rank}:2: "train.rank" must be a whole number from 1 to 4096, got 2.5`);
        const mixed = write("mixed.yaml", "train:\n  mixed_precision: fp8\n");
        expect(() => loadConfig(mixed)).toThrow(`${mixed}:2: "train.mixed_precision" must be one of auto | on | off`);
        // --recompute takes a count of first layers beside its choices, as text or a number
        const count = write("count.yaml", "train:\n  recompute: 0\n");
        expect(() => loadConfig(count)).toThrow(`${count}:2: "train.recompute" must be one of auto | on | off or a whole number from 1 to 1048576, got "0"`);
        const twelve = trainOptionsFromConfig(loadConfig(write("count-12.yaml", "train:\n  recompute: 12\n")).config.train);
        expect(flagValue(trainerArgs({ ...files, ...twelve }), "--recompute")).toBe("12");
        const none = write("none.yaml", "train:\n  targets: []\n");
        expect(() => loadConfig(none)).toThrow(`${none}:2: "train.targets" must name at least one of`);
        expect(() => loadConfig(write("ok.yaml", "name: t\n"), { set: ["train.batch_tokens=-1"] })).toThrow(/--set train\.batch_tokens: "train\.batch_tokens" must be a whole number from 0/);
    });

    it("rejects a flag value out of range naming the flag", () => {
        const { problems } = trainOptionsFromCli({ "lora-dropout": 2, targets: "attn_q,mlp", "mixed-precision": "fp8", rank: Number.NaN, recompute: "3.5" });
        expect(problems).toEqual([
            "--rank must be a number, got NaN",
            "--lora-dropout must be a number from 0 to 0.9, got 2",
            "--targets has \"mlp\": expected any of attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down",
            "--mixed-precision must be one of auto | on | off, got \"fp8\"",
            "--recompute must be one of auto | on | off or a whole number from 1 to 1048576, got \"3.5\""
        ]);
        expect(trainOptionsFromCli({ recompute: "12" })).toEqual({ values: { recompute: "12" }, problems: [] });
    });
});

function write(name: string, text: string): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
}
