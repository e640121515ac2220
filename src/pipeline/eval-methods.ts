import { evalMethods, type EvalMethod } from "../data/schemas.js";
import { InputError } from "../util/errors.js";

/**
 * The paper's comparison, one entry per evaluation method: what runs the episode and with
 * which adapters. The ReAct baselines are plain ReAct (the base model, no Reflect: the
 * first Finish ends the episode), as the paper's. The ablations remove one part of AutoAct each:
 * - ablate-finetune: group planning with no adapters (the three sub-agents are the base model);
 * - ablate-reflection: no reflect agent (the first Finish ends the episode);
 * - ablate-multi: one adapter trained on all samples, used by every sub-agent;
 * - ablate-filtering: adapters trained on trajectories that were not filtered for right answers.
 */
export interface EvalMethodSpec {
    /** The row label of the report's main table. */
    label: string;
    policy: "group" | "react" | "cot";
    /** Exemplars from the pipeline's seeds in the prompt (few-shot). */
    fewShot: boolean;
    /** Which adapters the sub-agents load (group policies only). */
    adapters: "trained" | "none" | "multi" | "unfiltered";
    /** Whether a Reflect follows the first Finish. */
    reflection: boolean;
}

export const evalMethodSpecs: Record<EvalMethod, EvalMethodSpec> = {
    "cot": { label: "CoT (zero-shot)", policy: "cot", fewShot: false, adapters: "none", reflection: false },
    "cot-fewshot": { label: "CoT (few-shot)", policy: "cot", fewShot: true, adapters: "none", reflection: false },
    "react": { label: "ReAct (zero-shot)", policy: "react", fewShot: false, adapters: "none", reflection: false },
    "react-fewshot": { label: "ReAct (few-shot)", policy: "react", fewShot: true, adapters: "none", reflection: false },
    "group": { label: "AutoAct (group planning)", policy: "group", fewShot: false, adapters: "trained", reflection: true },
    "ablate-finetune": { label: "AutoAct − fine-tuning", policy: "group", fewShot: false, adapters: "none", reflection: true },
    "ablate-reflection": { label: "AutoAct − reflection", policy: "group", fewShot: false, adapters: "trained", reflection: false },
    "ablate-multi": { label: "AutoAct − multi (one adapter)", policy: "group", fewShot: false, adapters: "multi", reflection: true },
    "ablate-filtering": { label: "AutoAct − filtering", policy: "group", fewShot: false, adapters: "unfiltered", reflection: true }
};

/** Reads `--methods`: names separated by commas or spaces, or "all". */
export function parseMethods(values: readonly string[]): EvalMethod[] {
    const names = values.flatMap((value) => value.split(/[\s,]+/)).filter((name) => name !== "");
    if (names.includes("all"))
        return [...evalMethods];
    for (const name of names) {
        if (!(evalMethods as readonly string[]).includes(name))
            throw new InputError(`--methods ${name}: unknown method (methods: ${evalMethods.join(", ")}, or all)`);
    }
    return [...new Set(names)] as EvalMethod[];
}

/** Whether the configured methods need the adapter trained on all samples / on unfiltered trajectories. */
export function needsAdapters(methods: readonly EvalMethod[], kind: "multi" | "unfiltered"): boolean {
    return methods.some((method) => evalMethodSpecs[method]?.adapters === kind);
}
