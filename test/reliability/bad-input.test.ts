import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { tableFromArrays, tableToIPC } from "apache-arrow";
import { beforeAll, describe, expect, it } from "vitest";
import { writeTable } from "../../src/data/table-io.js";
import { packageRoot } from "../../src/util/package.js";
import { runCliProcess, type CliResult } from "../helpers/cli.js";
import { badModelEdits, badModelTensorEdits, hugeTensorCountHeader, rewriteGguf, writeAdapter } from "./gguf-fixtures.js";

/**
 * The bad-input table: every case runs the real CLI on one malformed input (config, run
 * directory, manifest, dataset, Arrow table, GGUF model or adapter, flag) and must end with
 * exactly one error line on stderr ("autoact: ..."), exit code 2, nothing on stdout, no file
 * it would have written, and no native abort. The only other stderr lines allowed before the
 * error are a stage's own status lines ("filter: ...", "eval: ...").
 */
const shared = path.resolve(packageRoot, "../shared");
const tinyModel = path.join(shared, "models", "stories260K.gguf");
const haveModel = fs.existsSync(tinyModel);
if (!haveModel)
    console.warn(`skipping the model cases of the bad-input table: ${tinyModel} is absent`);

interface Case {
    name: string;
    args: () => string[];
    /** The one stderr line. */
    error: RegExp;
    /** Paths that must not exist afterwards (what the command would have written). */
    absent?: () => string[];
    needsModel?: boolean;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-bad-input-"));
const file = (name: string, content?: string | Uint8Array): string => {
    const target = path.join(dir, name);
    if (content != null)
        fs.writeFileSync(target, content);
    return target;
};
const fresh = (name: string) => path.join(dir, "runs", name);

/** A stage command that needs no model: errors before or at the run directory. */
const filterWith = (config: string, runDir: string, ...extra: string[]) => ["filter", "--config", config, "--run-dir", runDir, ...extra];

const configCases: Case[] = [
    ["malformed YAML", "name: x\nsynth: [\n", /bad-yaml\.yaml:\d+: malformed YAML/],
    ["unknown key", "name: x\nsynth:\n  speed: 3\n", /unknown-key\.yaml:3: unknown key "synth\.speed"/],
    ["__proto__ key", "__proto__:\n  toString: 1\n", /proto\.yaml:1: the key "__proto__" is not allowed/],
    ["constructor key", "constructor: 1\n", /constructor\.yaml:1: the key "constructor" is not allowed/],
    ["nested prototype key", "synth:\n  prototype: {}\n", /prototype\.yaml:2: the key "prototype" is not allowed/],
    ["a list, not a mapping", "- a\n- b\n", /list\.yaml:1: a pipeline config must be a mapping/],
    ["wrong type", "synth:\n  max_steps: many\n", /wrong-type\.yaml:2: "synth\.max_steps" must be a number/],
    ["enum", "task:\n  kind: essay\n", /enum\.yaml:2: "task\.kind" must be one of/],
    ["temperature range reversed", "instruct:\n  temperature: [0.9, 0.1]\n", /"instruct\.temperature" must be \[low, high\]/],
    ["duplicate key", "name: a\nname: b\n", /duplicate-key\.yaml:2: malformed YAML: Map keys must be unique/],
    ["negative top_k", "eval:\n  top_k: -3\n", /"eval\.top_k" must be at least 0/],
    ["grounded without a corpus", "instruct:\n  mode: grounded\n", /grounded-without-a-corpus\.yaml: "instruct\.mode" grounded writes questions from corpus passages, but "data\.corpus" names no corpus/],
    ["more tools than the library", "tools:\n  library: [Search, Lookup]\n  count: 3\n", /more-tools-than-the-library\.yaml: "tools\.count" \(3\) is more than the 2 tools of "tools\.library"/],
    ["empty model path", "model:\n  path: \"\"\n", /empty-model-path\.yaml:2: "model\.path" must name a GGUF file, an hf: URI or a preset/],
    ["alias bomb", ["a: &a [x, x, x, x, x, x, x, x, x, x]",
        ...Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(", ")}]`)].join("\n") + "\n",
    /alias-bomb\.yaml:\d+: malformed YAML: too many alias expansions/]
].map(([name, text, error]) => {
    const slug = (name as string) === "malformed YAML" ? "bad-yaml" : (name as string) === "__proto__ key" ? "proto" :
        (name as string) === "constructor key" ? "constructor" : (name as string) === "nested prototype key" ? "prototype" :
            (name as string) === "a list, not a mapping" ? "list" : (name as string).replace(/[^a-z]+/gi, "-").toLowerCase();
    return {
        name: `config: ${name as string}`,
        args: () => filterWith(file(`${slug}.yaml`, text as string), fresh(slug)),
        error: error as RegExp,
        absent: () => [fresh(slug)]
    };
});

const plainConfig = () => file("plain.yaml", "name: plain\n");
const setCases: Case[] = [
    ["synth.temperature=-1", /--set synth\.temperature: "synth\.temperature" must be at least 0, got -1/],
    ["synth.top_p=0", /"synth\.top_p" must be greater than 0/],
    ["eval.top_p=2", /"eval\.top_p" must be greater than 0 and at most 1, got 2/],
    ["train.alpha=-2", /"train\.alpha" must be a number from/],
    ["train.rank=0", /"train\.rank" must be a whole number from 1/],
    ["model.parallel=0", /"model\.parallel" must be at least 1/],
    ["model.path=", /--set model\.path: "model\.path" must name a GGUF file/],
    ["synth.speed=3", /unknown key "synth\.speed"/],
    ["__proto__.polluted=1", /the key "__proto__" is not allowed/],
    ["constructor=1", /the key "constructor" is not allowed/],
    ["synth.max_steps", /expected KEY=VALUE/]
].map(([set, error], i) => ({
    name: `--set ${set as string}`,
    args: () => filterWith(plainConfig(), fresh(`set-${i}`), "--set", set as string),
    error: error as RegExp,
    absent: () => [fresh(`set-${i}`)]
}));

/** A run directory holding a config and the given manifest text. */
function runDirWithManifest(name: string, manifest: string): string {
    const runDir = fresh(name);
    fs.mkdirSync(runDir, { recursive: true });
    fs.writeFileSync(path.join(runDir, "config.yaml"), "name: manifest\n");
    fs.writeFileSync(path.join(runDir, "manifest.json"), manifest);
    return runDir;
}
const manifestCases: Case[] = [
    ["[]", "[]", /not a run manifest/],
    ["null", "null", /not a run manifest/],
    ["garbage", "{{{ not json", /corrupt manifest/],
    ["a number", "42", /not a run manifest/],
    ["stages as a list", '{"version":1,"pipeline":"x","stages":[]}', /not a run manifest/],
    ["a malformed stage record", '{"version":1,"pipeline":"x","stages":{"filter":5}}', /the record of stage "filter" is malformed/]
].map(([label, text, error], i) => ({
    name: `manifest.json: ${label as string}`,
    args: () => {
        const runDir = runDirWithManifest(`manifest-${i}`, text as string);
        return ["filter", "--run-dir", runDir];
    },
    error: error as RegExp,
    absent: () => [path.join(fresh(`manifest-${i}`), "filtered.arrow")]
}));

const runDirCases: Case[] = [
    {
        name: "instruct without a seeds file",
        args: () => ["instruct", "--config", file("no-seeds.yaml", "name: s\n"), "--run-dir", fresh("no-seeds"), "--model", tinyModel, "--data", dir],
        error: /data\.seeds names no seeds file: give one/, absent: () => [fresh("no-seeds")], needsModel: true
    },
    {
        // the missing table is named before the corpus is built (here it would fail on its bad record; by default it is a download)
        name: "run --from train on a new run directory",
        args: () => ["run", file("corpus-first.yaml", `name: c\ndata:\n  search: [${dir}]\n  corpus: [${path.basename(file("bad-corpus.jsonl", '{"title": 5}\n'))}]\n`),
            "--from", "train", "--until", "eval", "--run-dir", fresh("from-train"), "--model", tinyModel],
        error: /stage train needs .*from-train\/samples\.arrow; run the split stage first$/, absent: () => [fresh("from-train")], needsModel: true
    },
    { name: "run dir under /proc", args: () => filterWith(plainConfig(), "/proc/autoact-x/run"), error: /cannot create run directory \/proc\/autoact-x\/run/ },
    { name: "run dir is a file", args: () => filterWith(plainConfig(), file("a-file", "x")), error: /a-file is not a folder/ },
    { name: "run dir below a file", args: () => filterWith(plainConfig(), path.join(file("b-file", "x"), "run")), error: /b-file is not a folder/ },
    {
        name: "run dir locked by a live process",
        args: () => {
            const runDir = fresh("locked");
            fs.mkdirSync(runDir, { recursive: true });
            fs.writeFileSync(path.join(runDir, ".lock"), `${process.pid}\n`);
            return filterWith(plainConfig(), runDir);
        },
        error: new RegExp(`is in use by process ${process.pid}`)
    },
    {
        name: "a stage's input table missing",
        args: () => filterWith(plainConfig(), fresh("no-input")),
        error: /stage filter needs .*trajectories\.arrow; run the synth stage first/,
        absent: () => [fresh("no-input")]
    },
    {
        name: "a stage's input table is garbage",
        args: () => {
            const runDir = fresh("garbage-table");
            fs.mkdirSync(runDir, { recursive: true });
            fs.writeFileSync(path.join(runDir, "trajectories.arrow"), "not arrow at all");
            fs.writeFileSync(path.join(runDir, "tasks.arrow"), "not arrow either");
            return filterWith(plainConfig(), runDir);
        },
        error: /not a readable Arrow IPC file: .*(trajectories|tasks)\.arrow/,
        absent: () => [path.join(fresh("garbage-table"), "filtered.arrow")]
    },
    {
        name: "a stage's input table holds another table",
        args: () => {
            const runDir = fresh("wrong-table");
            fs.mkdirSync(runDir, { recursive: true });
            fs.copyFileSync(file("tasks.arrow"), path.join(runDir, "trajectories.arrow"));
            fs.copyFileSync(file("tasks.arrow"), path.join(runDir, "tasks.arrow"));
            return filterWith(plainConfig(), runDir);
        },
        error: /trajectories\.arrow holds the table "tasks", not "trajectories"/,
        absent: () => [path.join(fresh("wrong-table"), "filtered.arrow")]
    }
];

const arrowCases: Case[] = [
    { name: "inspect: garbage", args: () => ["inspect", file("garbage.arrow", "ARROW1 but not really")], error: /not a readable Arrow IPC file: .*garbage\.arrow/ },
    { name: "inspect: empty file", args: () => ["inspect", file("empty.arrow", "")], error: /not a readable Arrow IPC file: .*empty\.arrow/ },
    { name: "inspect: truncated", args: () => ["inspect", file("truncated.arrow")], error: /truncated\.arrow/ },
    { name: "inspect: a folder", args: () => ["inspect", dir], error: /table file is not a regular file/ },
    { name: "inspect: missing", args: () => ["inspect", path.join(dir, "nowhere.arrow")], error: /table file not found/ },
    {
        name: "train --data: an Arrow table without text columns",
        args: () => ["train", "--base", tinyModel, "--data", file("huge-int.arrow"), "--agent", "plan", "--out", path.join(dir, "out-int")],
        error: /huge-int\.arrow: row 0: field "input" must be a string/, absent: () => [path.join(dir, "out-int")], needsModel: true
    },
    { name: "inspect --export under /proc", args: () => ["inspect", file("tasks.arrow"), "--export", "/proc/autoact-x/y.jsonl"], error: /cannot create folder \/proc\/autoact-x/ },
    { name: "inspect --export onto a folder", args: () => ["inspect", file("tasks.arrow"), "--export", dir], error: /--export .* is a folder; name a file/ },
    { name: "inspect --shape on a non-samples table", args: () => ["inspect", file("tasks.arrow"), "--export", path.join(dir, "shaped.jsonl"), "--shape", "alpaca"], error: /samples/, absent: () => [path.join(dir, "shaped.jsonl")] }
];

const trainData = (name: string, text: string) => ["train", "--base", tinyModel, "--data", file(name, text), "--agent", "plan", "--out", path.join(dir, `out-${name}`)];
const datasetCases: Case[] = ([
    ["missing.json", null, /training data not found/],
    ["not-array.json", '{"input": "a", "output": "b"}', /expected a JSON array/],
    ["invalid.json", "[{", /invalid.json:1: the JSON array is truncated/],
    ["bad-line.jsonl", '{"input": "a", "output": "b"}\n{nope\n', /bad-line\.jsonl:2: invalid JSON/],
    ["no-output.jsonl", '{"input": "a"}\n', /no-output\.jsonl:1: field "output" must be a string/],
    ["empty-output.jsonl", '{"input": "a", "output": ""}\n', /field "output" is empty/],
    ["alpaca-empty.jsonl", '{"instruction": "", "input": "", "output": "b"}\n', /alpaca-empty\.jsonl:1: field "input" is empty/],
    ["sharegpt-3.jsonl", '{"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}, {"from": "human", "value": "c"}]}\n', /sharegpt-3\.jsonl:1: a ShareGPT row must hold exactly one human turn then one gpt turn/],
    ["empty-list.json", "[]", /the dataset is empty/],
    ["data.txt", "input output", /unknown training data format/],
    ["agent-missing.jsonl", '{"input": "a", "output": "b", "agent": "tool"}\n', /no rows for agent "plan"/]
] as [string, string | null, RegExp][]).map(([name, text, error]) => ({
    name: `train --data ${name}`,
    args: () => text == null ? trainData(name, "").map((a) => a === path.join(dir, name) ? path.join(dir, "really-missing.json") : a) : trainData(name, text),
    error,
    absent: () => [path.join(dir, `out-${name}`)],
    needsModel: true
}));

const ggufCases: Case[] = [
    ...badModelEdits.map(([name, , pattern]): Case => ({
        name: `model info: ${name}`, args: () => ["model", "info", path.join(dir, `${name}.gguf`)], error: pattern, needsModel: true
    })),
    { name: "model info: 2^63 tensors", args: () => ["model", "info", file("huge-count.gguf")], error: /cannot fit/ },
    { name: "model info: not GGUF", args: () => ["model", "info", file("not.gguf", "definitely not a gguf file")], error: /not a GGUF file/ },
    { name: "model info: truncated", args: () => ["model", "info", file("cut.gguf")], error: /truncated/, needsModel: true },
    {
        name: "run: head_count 0 (no native abort, no run dir)",
        args: () => ["run", path.join(packageRoot, "pipelines", "hotpotqa.yaml"), "--model", path.join(dir, "head-count-0.gguf"), "--run-dir", fresh("gguf-run")],
        error: /head-count-0\.gguf: llama\.attention\.head_count is 0/, absent: () => [fresh("gguf-run")], needsModel: true
    },
    {
        name: "run: rope.scaling.type bogus (no native abort)",
        args: () => ["run", path.join(packageRoot, "pipelines", "hotpotqa.yaml"), "--model", path.join(dir, "rope-scaling-bogus.gguf"), "--run-dir", fresh("gguf-run-rope")],
        error: /rope-scaling-bogus\.gguf: llama\.rope\.scaling\.type must be one of/, absent: () => [fresh("gguf-run-rope")], needsModel: true
    },
    {
        name: "run: expert_used_count over expert_count (no native abort)",
        args: () => ["run", path.join(packageRoot, "pipelines", "hotpotqa.yaml"), "--model", path.join(dir, "experts-used-over.gguf"), "--run-dir", fresh("gguf-run-experts")],
        error: /experts-used-over\.gguf: llama\.expert_used_count is 8/, absent: () => [fresh("gguf-run-experts")], needsModel: true
    },
    {
        name: "run: block_count huge",
        args: () => ["run", path.join(packageRoot, "pipelines", "hotpotqa.yaml"), "--model", path.join(dir, "block-count-huge.gguf"), "--run-dir", fresh("gguf-run2")],
        error: /block_count is 4000000000/, absent: () => [fresh("gguf-run2")], needsModel: true
    },
    {
        name: "train --base: 2^63 tensors (no memory blow-up)",
        args: () => ["train", "--base", file("huge-count.gguf"), "--data", file("ok.jsonl", '{"input": "a", "output": "b"}\n'), "--agent", "plan", "--out", path.join(dir, "out-huge")],
        error: /cannot fit/, absent: () => [path.join(dir, "out-huge")]
    },
    {
        name: "train --base: NaN epsilon",
        args: () => ["train", "--base", path.join(dir, "eps-nan.gguf"), "--data", file("ok.jsonl", '{"input": "a", "output": "b"}\n'), "--agent", "plan", "--out", path.join(dir, "out-nan")],
        error: /layer_norm_rms_epsilon must be a finite number/, absent: () => [path.join(dir, "out-nan")], needsModel: true
    },
    {
        name: "bench infer: short vocabulary",
        args: () => ["bench", "infer", "--model", path.join(dir, "short-vocab.gguf"), "--out", path.join(dir, "bench.json")],
        error: /fewer than the vocabulary's 512/, absent: () => [path.join(dir, "bench.json")], needsModel: true
    },
    {
        name: "bench infer: adapter of the wrong shape",
        args: () => ["bench", "infer", "--model", tinyModel, "--lora", path.join(dir, "wrong-shape.gguf"), "--out", path.join(dir, "bench2.json")],
        error: /wrong-shape\.gguf: tensor blk\.0\.attn_q\.weight\.lora_a \[32, 4\] does not fit/, absent: () => [path.join(dir, "bench2.json")], needsModel: true
    },
    {
        name: "bench remote: not a GGUF file (before llama-server starts)",
        args: () => ["bench", "remote", "--model", file("not.gguf", "definitely not a gguf file"), "--out", path.join(dir, "remote.json")],
        error: /model file is not a GGUF file \(bad magic .*not\.gguf$/, absent: () => [path.join(dir, "remote.json")]
    },
    {
        name: "bench remote: random weights",
        args: () => ["bench", "remote", "--model", "synth:tiny", "--out", path.join(dir, "remote.json")],
        error: /--model synth:tiny: bench remote needs a trained model \(random weights write bytes that are not UTF-8/, absent: () => [path.join(dir, "remote.json")]
    },
    {
        name: "eval --plan: adapter of the wrong shape",
        args: () => ["eval", "--run-dir", evalRunDir("eval-shape"), "--plan", path.join(dir, "wrong-shape.gguf")],
        error: /wrong-shape\.gguf: tensor .* does not fit/, absent: () => [path.join(fresh("eval-shape"), "eval-easy.arrow")], needsModel: true
    },
    {
        name: "eval --plan: missing adapter",
        args: () => ["eval", "--run-dir", evalRunDir("eval-missing"), "--plan", path.join(dir, "no-such-adapter.gguf")],
        error: /no-such-adapter\.gguf/, absent: () => [path.join(fresh("eval-missing"), "eval-easy.arrow")], needsModel: true
    },
    {
        name: "eval --plan: a model, not an adapter",
        args: () => ["eval", "--run-dir", evalRunDir("eval-model"), "--plan", tinyModel],
        error: /not a LoRA adapter/, absent: () => [path.join(fresh("eval-model"), "eval-easy.arrow")], needsModel: true
    }
];

/** A run directory whose eval stage has its inputs (config and tools.arrow); one per case,
 *  since cases run side by side and a run directory takes one process at a time. */
function evalRunDir(name: string): string {
    const runDir = fresh(name);
    if (!fs.existsSync(runDir)) {
        fs.mkdirSync(runDir, { recursive: true });
        fs.writeFileSync(path.join(runDir, "config.yaml"), `name: ${name}\nmodel:\n  path: ${tinyModel}\ndata:\n  eval:\n    - name: easy\n      format: hotpotqa\n      file: easy.jsonl\n`);
        fs.copyFileSync(file("tools.arrow"), path.join(runDir, "tools.arrow"));
    }
    return runDir;
}

const fileCases: Case[] = [
    {
        name: "corpus import into a file that is not a database",
        args: () => ["corpus", "import", path.join(shared, "datasets", "hotpotqa", "easy.jsonl"), "--db", file("not-a-db.sqlite", "garbage")],
        error: /not-a-db\.sqlite: not a usable corpus database \(file is not a database\)/, needsModel: true
    },
    { name: "corpus import of a missing file", args: () => ["corpus", "import", path.join(dir, "nowhere.jsonl"), "--db", path.join(dir, "c.sqlite")], error: /corpus input file not found/, absent: () => [path.join(dir, "c.sqlite")] },
    { name: "corpus import of a bad record", args: () => ["corpus", "import", file("bad-page.jsonl", '{"title": 5}\n'), "--db", path.join(dir, "c2.sqlite")], error: /bad-page\.jsonl:1: key "title"/, absent: () => [path.join(dir, "c2.sqlite")] },
    { name: "model synth --out under /proc", args: () => ["model", "synth", "--preset", "tiny", "--out", "/proc/autoact-x/m.gguf"], error: /cannot create folder \/proc\/autoact-x/ },
    {
        name: "model synth --out onto a folder",
        args: () => { fs.mkdirSync(path.join(dir, "folder.gguf"), { recursive: true }); return ["model", "synth", "--preset", "tiny", "--out", path.join(dir, "folder.gguf")]; },
        error: /cannot write .*folder\.gguf: is a folder, not a file/
    }
];

const flagCases: Case[] = [
    { name: "unknown flag", args: () => ["run", plainConfig(), "--frobnicate"], error: /Unknown argument: frobnicate/ },
    { name: "unknown command", args: () => ["frobnicate"], error: /Unknown argument: frobnicate|Did you mean/ },
    { name: "a command group alone", args: () => ["bench"], error: /^autoact: Name a bench command: infer, train, report, remote \(autoact bench --help\)$/ },
    { name: "--limit -1", args: () => [...filterWith(plainConfig(), fresh("limit0")), "--limit", "-1"], error: /--limit must be a whole number \(0 = no limit\), got -1/, absent: () => [fresh("limit0")] },
    { name: "--limit abc", args: () => [...filterWith(plainConfig(), fresh("limitabc")), "--limit", "abc"], error: /--limit must be a number, got "abc"$/, absent: () => [fresh("limitabc")] },
    { name: "--from after --until", args: () => ["run", plainConfig(), "--from", "split", "--until", "synth", "--run-dir", fresh("order")], error: /--from split comes after --until synth/, absent: () => [fresh("order")] },
    { name: "--from unknown stage", args: () => ["run", plainConfig(), "--from", "bake"], error: /Invalid values|bake/ },
    { name: "stage without --run-dir or --config", args: () => ["filter"], error: /needs --run-dir DIR/ },
    { name: "stage on a folder that is no run directory", args: () => ["eval", "--run-dir", dir], error: new RegExp(`${dir} is not a run directory \\(no config\\.yaml\\): run a pipeline there first`) },
    { name: "train --run-dir on a folder that is no run directory", args: () => ["train", "--run-dir", dir], error: /is not a run directory \(no config\.yaml\)/ },
    { name: "train without its flags", args: () => ["train", "--base", "x.gguf"], error: /needs --run-dir DIR, or all of --base, --data, --agent and --out \(missing: --data, --agent, --out\)/ },
    { name: "bench remote --parallel 0", args: () => ["bench", "remote", "--model", tinyModel, "--parallel", "0", "--out", path.join(dir, "remote0.json")], error: /--parallel must be a positive integer, got 0$/, absent: () => [path.join(dir, "remote0.json")], needsModel: true },
    { name: "train --threads -3 (before any tokenizing)", args: () => ["train", "--base", tinyModel, "--data", file("t.jsonl", '{"input": "a", "output": "b"}\n'), "--agent", "plan", "--out", path.join(dir, "out-threads"), "--threads", "-3"], error: /--threads must be a positive integer, got -3$/, absent: () => [path.join(dir, "out-threads")], needsModel: true },
    { name: "train --threads abc", args: () => ["train", "--base", tinyModel, "--data", file("t.jsonl", '{"input": "a", "output": "b"}\n'), "--agent", "plan", "--out", path.join(dir, "out-threads2"), "--threads", "abc"], error: /--threads must be a number, got "abc"$/, absent: () => [path.join(dir, "out-threads2")], needsModel: true },
    { name: "a bare --run-dir (not the working directory)", args: () => ["filter", "--run-dir"], error: /^autoact: --run-dir needs a value$/ },
    { name: "a bare --steps before another flag (not its default)", args: () => ["bench", "train", "--model", "synth:tiny", "--steps", "--out", path.join(dir, "steps.json")], error: /^autoact: --steps needs a value$/, absent: () => [path.join(dir, "steps.json")] },
    { name: "deploy --port=80a", args: () => ["deploy", "--run-dir", fresh("port"), "--port=80a"], error: /--port must be a number, got "80a"$/, absent: () => [fresh("port")] },
    { name: "train: --agent twice (not \"plan,all\")", args: () => ["train", "--base", tinyModel, "--data", file("t.jsonl", '{"input": "a", "output": "b"}\n'), "--agent", "plan", "--agent", "all", "--out", path.join(dir, "out-twice")], error: /^autoact: --agent is given more than once$/, absent: () => [path.join(dir, "out-twice")], needsModel: true },
    { name: "train: a target named twice (not a native abort)", args: () => ["train", "--base", tinyModel, "--data", file("t.jsonl", '{"input": "a", "output": "b"}\n'), "--agent", "plan", "--out", path.join(dir, "out-targets"), "--targets", "attn_k,attn_k"], error: /^autoact: --targets has "attn_k" twice$/, absent: () => [path.join(dir, "out-targets")], needsModel: true },
    { name: "train: an agent name that is a path", args: () => ["train", "--base", tinyModel, "--data", file("t.jsonl", '{"input": "a", "output": "b"}\n'), "--agent", "../evil", "--out", path.join(dir, "out-evil")], error: /^autoact: agent name "\.\.\/evil" must be letters, digits, _ and -/, absent: () => [path.join(dir, "out-evil"), path.join(dir, "evil.gguf")], needsModel: true },
    { name: "bench remote: --tg twice", args: () => ["bench", "remote", "--model", tinyModel, "--tg", "4", "--tg", "8"], error: /--tg is given more than once$/, needsModel: true },
    { name: "pipeline file missing", args: () => ["run", path.join(dir, "nowhere.yaml")], error: /pipeline config not found/ },
    { name: "model file missing", args: () => ["run", path.join(packageRoot, "pipelines", "hotpotqa.yaml"), "--model", path.join(dir, "nowhere.gguf"), "--run-dir", fresh("nomodel")], error: /model file not found/, absent: () => [fresh("nomodel")] }
];

const cases: Case[] = [...configCases, ...setCases, ...manifestCases, ...runDirCases, ...arrowCases, ...datasetCases, ...ggufCases, ...fileCases, ...flagCases];

describe("bad input: one line on stderr, exit 2, no partial output, no native abort", () => {
    beforeAll(async () => {
        await writeTable(file("tasks.arrow"), "tasks", [{
            id: "t1", question: "q", answer: "a", source: "seed", round: 0, choices: null, level: null, passages: [], meta: null
        }]);
        await writeTable(file("tools.arrow"), "tools", [{ name: "Search", selected: true, rank: 1, reason: "", fallback: false, raw: "" }]);
        const whole = fs.readFileSync(file("tasks.arrow"));
        file("truncated.arrow", whole.subarray(0, Math.floor(whole.length * 0.6)));
        file("huge-int.arrow", tableToIPC(tableFromArrays({ n: BigInt64Array.from([1n << 60n]) }), "file"));
        file("huge-count.gguf", hugeTensorCountHeader());
        if (haveModel) {
            for (const [name, edit] of badModelEdits)
                await rewriteGguf(tinyModel, path.join(dir, `${name}.gguf`), edit, badModelTensorEdits[name]);
            file("cut.gguf", fs.readFileSync(tinyModel).subarray(0, 600_000));
            await writeAdapter(path.join(dir, "wrong-shape.gguf"), { inDim: 32 });
        }
    });

    it(`has at least 50 cases (${cases.length})`, () => {
        expect(cases.length).toBeGreaterThanOrEqual(50);
        expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
    });

    it("every case fails cleanly", { timeout: 600_000 }, async () => {
        const runnable = cases.filter((c) => haveModel || !c.needsModel);
        const results = new Map<string, CliResult>();
        // A few at a time: each is a separate CLI process.
        const queue = [...runnable];
        await Promise.all(Array.from({ length: 3 }, async () => {
            for (let next = queue.shift(); next != null; next = queue.shift())
                results.set(next.name, await runCliProcess(next.args(), { cwd: dir }));
        }));
        const failures: string[] = [];
        for (const c of runnable) {
            const result = results.get(c.name)!;
            const all = result.stderr.split("\n").filter((l) => l !== "");
            const status = all.filter((l) => /^(instruct|select-tools|synth|filter|split|train|eval): /.test(l));
            const lines = all.filter((l) => !status.includes(l));
            const problems = [
                result.code !== 2 ? `exit ${result.code}` : null,
                lines.length !== 1 ? `${lines.length} error lines` : null,
                all.at(-1) !== lines[0] ? "the error is not the last line" : null,
                lines.length > 0 && !lines[0]!.startsWith("autoact: ") ? "stderr does not start with autoact:" : null,
                lines.length > 0 && !c.error.test(lines[0]!) ? `does not match ${c.error}` : null,
                result.stdout !== "" ? "wrote to stdout" : null,
                /GGML_ASSERT|Aborted|core dumped|\[node-llama-cpp\]/.test(result.stderr) ? "native output" : null,
                ...(c.absent?.() ?? []).filter((p) => fs.existsSync(p)).map((p) => `left ${p}`)
            ].filter((p) => p != null);
            if (problems.length > 0)
                failures.push(`${c.name}: ${problems.join(", ")}\n    stderr: ${result.stderr.trim().replace(/\n/g, "\n            ")}`);
        }
        console.log(`bad-input table: ${runnable.length - failures.length} of ${runnable.length} cases clean (${cases.length} in the table)`);
        expect(failures).toEqual([]);
    });
});
