import { readTable } from "../data/table-io.js";
import type { EvalMethod, EvalRow } from "../data/schemas.js";
import { evalMethodSpecs } from "./eval-methods.js";
import { meanByGroup } from "../metrics/index.js";
import { writeFileAtomicSync } from "../util/fs.js";
import { configToYaml } from "./config.js";
import { stageNames, type PipelineConfig } from "./config-schema.js";
import type { RunDir } from "./run-dir.js";
import { describeOverlap } from "./corpus.js";

/**
 * report.md: what each stage did (rows, time, throughput), the evaluation metrics per
 * level and overall for each method, and the resolved config beside them.
 */
export async function writeReport(runDir: RunDir, config: PipelineConfig): Promise<string> {
    const manifest = runDir.readManifest(config.name);
    const lines: string[] = [`# autoact run: ${config.name}`, ""];
    lines.push(`Run directory: \`${runDir.dir}\``, "");
    if (manifest.model != null)
        lines.push(`Model: \`${manifest.model.source}\` (sha256 ${manifest.model.sha256.slice(0, 16)}…, ${(manifest.model.bytes / 1e6).toFixed(1)} MB)`, "");

    if (manifest.corpus != null) {
        const corpus = manifest.corpus;
        lines.push("## Corpus", "");
        lines.push(`${corpus.pages} pages from ${corpus.sources.map((s) => `\`${s.name}\` (${s.format}, sha256 ${s.sha256.slice(0, 16)}…)`).join(", ") || "no source"}.`);
        const held = corpus.overlap.questions > 0 ? (corpus.allowed ? " — allowed by data.allow_eval_overlap (closed-book study)" : " — refused")
            : (corpus.overlap.supporting ?? 0) > 0 ? " — below the refusal threshold (half a question's paragraphs), but those questions' scores may not be clean" : "";
        lines.push(`Overlap with the evaluation sets: ${describeOverlap(corpus.overlap)}${held}.`, "");
    }

    lines.push("## Stages", "", "| stage | status | rows | seconds | tokens/s | notes |", "|---|---|---|---|---|---|");
    for (const stage of stageNames) {
        const record = manifest.stages[stage];
        if (record == null) {
            lines.push(`| ${stage} | not run | | | | |`);
            continue;
        }
        const rows = Object.entries(record.outputs).map(([name, o]) => `${name}: ${o.rows}`).join(", ");
        const stats = record.stats ?? {};
        const rate = typeof stats.tokens_per_s === "number" ? stats.tokens_per_s.toFixed(1) : "";
        const notes = Object.entries(stats)
            .filter(([key]) => key !== "tokens_per_s" && !key.includes("."))
            .map(([key, value]) => `${key}=${typeof value === "number" && !Number.isInteger(value) ? value.toFixed(3) : value}`)
            .join(" ");
        lines.push(`| ${stage} | ${record.status} | ${rows} | ${record.seconds?.toFixed(1) ?? ""} | ${rate} | ${escapeCell(notes || (record.error ?? ""))} |`);
    }
    lines.push("");
    if (manifest.imported != null) {
        const { tables, files, from } = manifest.imported;
        lines.push(`Imported by \`autoact import\` from ${from}'s files (${files.map((f) => `\`${f}\``).join(", ")}): ${tables.join(", ")}; the stages that write them did not run here.`, "");
    }

    // in the config's order of the sets (the paper's: easy, medium, hard), then any others
    const setOrder = config.data.eval.map((set) => `eval-${set.name}.arrow`);
    const rank = (file: string) => (setOrder.includes(file) ? setOrder.indexOf(file) : setOrder.length);
    // the tables of the eval run that finished, not whatever eval-*.arrow a failed run left
    const evalRecord = manifest.stages.eval;
    const evalFiles = evalRecord?.status === "done"
        ? Object.keys(evalRecord.outputs).filter((f) => /^eval-.+\.arrow$/.test(f) && runDir.exists(f)).sort().sort((a, b) => rank(a) - rank(b))
        : [];
    if (evalFiles.length > 0) {
        lines.push("## Evaluation", "");
        const all: { set: string; rows: EvalRow[] }[] = [];
        for (const file of evalFiles)
            all.push({ set: file.replace(/^eval-|\.arrow$/g, ""), rows: await readTable(runDir.file(file), "eval") });
        lines.push("### Main table", "", "The paper's comparison, each method by level: AutoAct, plain ReAct and CoT on the same base model, and the ablations (the paper's other rows, Chameleon, Reflexion, BOLAA and FireAct, are other systems and are not run here).", "");
        lines.push(...mainTable(all, config.task, evalRecord?.stats?.adapters !== "none"), "");
        lines.push(`Division of labor: Finish's answer is written by the ${config.split.finish_by} agent (\`split.finish_by: ${config.split.finish_by}\`${config.split.finish_by === "tool" ? ", the paper's" : ""}), in training samples and group planning alike.`, "");
        for (const { set, rows } of all) {
            lines.push(`### ${set}`, "");
            lines.push(...evalTable(rows), "");
        }
    }
    lines.push("## Config", "", "```yaml", configToYaml(config).trimEnd(), "```", "");
    const text = lines.join("\n");
    writeFileAtomicSync(runDir.file("report.md"), text);
    return runDir.file("report.md");
}

/**
 * The paper's main table: one row per method (in the paper's order), one column group per
 * level (F1 and EM for free-text tasks, `task.metric` first; accuracy for multiple choice) and, with several
 * levels, one for all of them, then the mean steps and the invalid-action rate over all levels.
 */
export function mainTable(sets: { set: string; rows: EvalRow[] }[], task: Pick<PipelineConfig["task"], "kind" | "metric">, trained = true): string[] {
    const rows = sets.flatMap(({ set, rows: setRows }) => setRows.map((row) => ({ row, level: row.level ?? set })));
    const levels = [...new Set(rows.map((r) => r.level))];
    const f1: [string, (r: EvalRow) => number] = ["F1", (r) => r.f1];
    const em: [string, (r: EvalRow) => number] = ["EM", (r) => r.em];
    // the task's metric first
    const metrics: [string, (r: EvalRow) => number][] = task.kind === "qa"
        ? (task.metric === "em" ? [em, f1] : [f1, em])
        : [["accuracy", (r) => (r.correct ? 1 : 0)]];
    const groups = levels.length > 1 ? [...levels, null] : levels; // null: all levels
    const header = ["method", ...groups.flatMap((level) => metrics.map(([name]) => `${level ?? "all"} ${name}`)), "mean steps", "invalid-action rate", "n"];
    const out = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`];
    const mean = (values: number[]) => (values.length === 0 ? undefined : values.reduce((a, b) => a + b, 0) / values.length);
    // The paper's order: the baselines, AutoAct, then its ablations (evalMethodSpecs is written so).
    for (const method of Object.keys(evalMethodSpecs) as EvalMethod[]) {
        const mine = rows.filter((r) => r.row.method === method);
        if (mine.length === 0)
            continue;
        const cells = groups.flatMap((level) => metrics.map(([, metric]) => pct(mean(mine.filter((r) => level == null || r.level === level).map((r) => metric(r.row))))));
        const steps = mean(mine.map((r) => r.row.steps));
        const invalid = mean(mine.map((r) => (r.row.steps === 0 ? 0 : r.row.invalid_actions / r.row.steps)));
        // a method meant to load trained adapters that ran without any is the base model: say so
        const label = `${evalMethodSpecs[method].label}${!trained && evalMethodSpecs[method].adapters !== "none" ? " (no adapters: the base model)" : ""}`;
        out.push(`| ${label} | ${cells.join(" | ")} | ${fixed(steps)} | ${pct(invalid)} | ${mine.length} |`);
    }
    return out;
}

/** One row per method and level (then overall): EM, F1, accuracy, steps, invalid actions, limits, speed. */
export function evalTable(rows: EvalRow[]): string[] {
    const out = [
        "| method | level | n | EM | F1 | accuracy | mean steps | invalid-action rate | step-limit rate | context-limit rate | tokens/s | episode s (sum) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    ];
    const methods = [...new Set(rows.map((r) => r.method))];
    for (const method of methods) {
        const mine = rows.filter((r) => r.method === method);
        const groups = meanByGroup(mine, {
            groupOf: (r) => r.level ?? undefined,
            metrics: {
                em: (r) => r.em,
                f1: (r) => r.f1,
                accuracy: (r) => r.correct,
                steps: (r) => r.steps,
                invalid: (r) => (r.steps === 0 ? 0 : r.invalid_actions / r.steps),
                stepLimit: (r) => r.stop_reason === "step_limit",
                // episodes whose prompt outgrew the context: a low score may be this, not the method
                contextLimit: (r) => r.stop_reason === "context_limit"
            }
        });
        for (const group of groups) {
            const members = group.group === "overall" ? mine : mine.filter((r) => (r.level ?? undefined) === group.group);
            const tokens = members.reduce((sum, r) => sum + r.generated_tokens, 0);
            const seconds = members.reduce((sum, r) => sum + r.time_ms, 0) / 1000;
            const m = group.means;
            out.push(`| ${method} | ${group.group} | ${group.count} | ${pct(m.em)} | ${pct(m.f1)} | ${pct(m.accuracy)} | ${fixed(m.steps)} | ${pct(m.invalid)} | ${pct(m.stepLimit)} | ${pct(m.contextLimit)} | ${seconds > 0 ? (tokens / seconds).toFixed(1) : ""} | ${seconds.toFixed(1)} |`);
        }
    }
    return out;
}

function pct(value: number | undefined): string {
    return value == null ? "" : (100 * value).toFixed(1);
}

function fixed(value: number | undefined): string {
    return value == null ? "" : value.toFixed(2);
}

function escapeCell(text: string): string {
    return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}
