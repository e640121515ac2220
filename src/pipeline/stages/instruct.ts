import { parseTaskPairs, selfInstructPrompt, TaskDeduplicator, type Passage, type TaskPair } from "../../agents/meta-agent.js";
import type { TaskRow } from "../../data/schemas.js";
import { writeTable } from "../../data/table-io.js";
import { SeededRandom, deriveSeed } from "../../util/random.js";
import { StageBatches } from "../batches.js";
import { limited, type StageContext, type StageDefinition } from "../context.js";
import { openRunCorpus } from "../corpus.js";
import { corpusInputs, dataInputs, evalSetInputs, seedsInput } from "../data-inputs.js";
import { evalQuestionCheck } from "../eval-data.js";
import { choicesFromQuestion } from "../task-setup.js";
import { parseOption } from "../../metrics/index.js";
import { readSeeds } from "../seeds.js";
import { imageOf } from "./synth.js";

/** Waves in a row that add no task before the stage gives up (a model whose replies give no pairs). */
const IDLE_WAVES = 5;

/**
 * Self-instruct: the meta-agent writes new tasks from the seeds (and, in grounded mode,
 * from passages sampled from the corpus, kept with each task). Rounds run in waves of
 * `model.parallel` at once; each wave is a resume batch. No task may repeat a question of the
 * evaluation sets (a model that has read the benchmark can write them out word for word).
 */
export const instructStage: StageDefinition = {
    name: "instruct",
    description: "Self-instruct: generate tasks from the seed examples",
    reads: {
        // model.parallel is the wave size: it decides which tasks each round sees.
        // the eval sets by file (their questions are held out; their content is hashed below), the corpus when grounded
        config: (context) => ["description", "task.kind", "instruct", "data.seeds", ...(context.config.instruct.mode === "grounded" ? ["data.corpus"] : []),
            "data.eval[].file", "data.eval[].format", "model.template", "model.context_size", "model.parallel"],
        tables: [],
        // the evaluation sets' questions are held out of the tasks
        data: dataInputs(seedsInput, evalSetInputs, [corpusInputs, (context) => context.config.instruct.mode === "grounded"]),
        model: true,
        limit: true
    },
    writes: { files: () => ["tasks.arrow"] },
    async run(context, inputHash) {
        const { config } = context;
        const settings = config.instruct;
        const seedsFile = await context.data.requireSeeds(config.data.seeds);
        const seeds = readSeeds(seedsFile);
        context.log(`instruct: ${seeds.length} seeds from ${seedsFile}`);
        const target = limited(settings.target, context.limit);
        const maxRounds = context.limit == null
            ? settings.max_rounds
            : Math.min(settings.max_rounds, Math.max(2, 2 * Math.ceil(target / settings.per_round)));
        const isEvalQuestion = await evalQuestionCheck(context);
        const multipleChoice = config.task.kind === "multiple-choice";
        const dedup = new TaskDeduplicator({
            maxAnswerChars: settings.max_answer_chars,
            repeatYesNo: settings.repeat_yes_no,
            heldOut: isEvalQuestion,
            answerText: multipleChoice ? (pair) => chosenOption(pair) ?? pair.answer : undefined
        });
        seeds.forEach((seed) => dedup.remember(seed));
        const seedsInEval = seeds.filter((seed) => isEvalQuestion(seed.question)).length;
        // A multiple-choice task whose options cannot be read, or whose answer names none of
        // them, can never be answered right: the filter would keep none of its trajectories.
        let unscorable = 0;
        const scorable = (pair: TaskPair) => !multipleChoice || chosenOption(pair) !== undefined;
        if (seedsInEval > 0)
            context.log(`instruct: warning: ${seedsInEval} of the ${seeds.length} seeds (${config.data.seeds}) are questions of the evaluation sets: the scores on them are not clean`);

        const seedRows: TaskRow[] = seeds.map((seed, i) => taskRow(`seed-${i + 1}`, seed, "seed", 0, []));
        const generated: TaskRow[] = [];
        const corpus = settings.mode === "grounded" ? await openRunCorpus(context) : null;
        const agent = await context.model.agent("meta");
        const batches = new StageBatches(context.runDir, "instruct", inputHash, "tasks");
        const done = batches.completed();
        const wave = Math.max(1, context.config.model.parallel);
        let tokens = 0;
        let idleWaves = 0;
        let roundsRun = 0;
        const started = performance.now();
        context.progress.start("instruct", target);

        for (let first = 0, batch = 0; first < maxRounds && generated.length < target && idleWaves < IDLE_WAVES; first += wave, batch++) {
            if (done.has(batch)) {
                const rows = await batches.read(batch);
                rows.forEach((row) => dedup.remember(row));
                generated.push(...rows);
                idleWaves = rows.length === 0 ? idleWaves + 1 : 0;
                roundsRun = Math.min(maxRounds, first + wave);
                context.progress.advance(rows.length);
                continue;
            }
            const rounds = Array.from({ length: Math.min(wave, maxRounds - first) }, (_, i) => first + i + 1);
            // Each round's examples and passages are drawn before the wave, from what exists now.
            const plans = rounds.map((round) => {
                const random = new SeededRandom(deriveSeed(settings.seed, `round-${round}`));
                const fromGenerated = Math.max(0, settings.shown - seeds.length);
                const examples: TaskPair[] = [
                    ...random.sample(seeds, settings.shown),
                    ...random.sample(generated, fromGenerated).map((row) => ({ question: row.question, answer: row.answer, image: imageOf(row) }))
                ];
                const passages: Passage[] = corpus?.samplePages(settings.passages, random) ?? [];
                return {
                    round,
                    passages,
                    temperature: random.uniform(settings.temperature[0], settings.temperature[1]),
                    prompt: selfInstructPrompt({
                        description: config.description,
                        examples,
                        count: settings.per_round,
                        passages: corpus == null ? undefined : passages
                    })
                };
            });
            const results = await Promise.all(plans.map((plan) => agent.complete(plan.prompt, {
                temperature: plan.temperature,
                maxTokens: settings.max_tokens,
                seed: deriveSeed(settings.seed, `gen-${plan.round}`)
            })));
            const rows: TaskRow[] = [];
            results.forEach((result, i) => {
                tokens += result.generatedTokens;
                const plan = plans[i]!;
                for (const pair of parseTaskPairs(result.text)) {
                    if (generated.length + rows.length >= target)
                        break;
                    if (!scorable(pair)) {
                        unscorable++;
                        continue;
                    }
                    if (dedup.accept(pair))
                        rows.push(taskRow(`gen-${plan.round}-${rows.length + 1}`, pair, "generated", plan.round, plan.passages));
                }
            });
            await batches.write(batch, rows);
            generated.push(...rows);
            idleWaves = rows.length === 0 ? idleWaves + 1 : 0;
            roundsRun = first + rounds.length;
            context.progress.advance(rows.length, results.reduce((sum, r) => sum + r.generatedTokens, 0));
        }
        corpus?.close();
        context.progress.done();
        if (idleWaves >= IDLE_WAVES && generated.length < target)
            context.log(`instruct: stopped after ${roundsRun} of ${maxRounds} rounds: the last ${IDLE_WAVES} waves of ${wave} gave no new task`);
        if (target > 0 && generated.length === 0)
            context.log(`instruct: warning: the meta-agent's answers gave 0 new tasks in ${roundsRun} rounds (target ${target}); tasks.arrow holds only the ${seedRows.length} seeds`);
        const rows = [...seedRows, ...generated];
        await writeTable(context.runDir.file("tasks.arrow"), "tasks", rows);
        context.runDir.clearParts("instruct");
        return {
            outputs: { "tasks.arrow": rows.length },
            stats: {
                seeds: seeds.length, generated: generated.length, target, rounds: roundsRun, generated_tokens: tokens,
                // generated tasks refused as eval questions (this run's rounds; resumed ones are not recounted)
                eval_repeats: dedup.heldOutRepeats, seeds_in_eval: seedsInEval, unscorable,
                tokens_per_s: tokens / Math.max(1e-3, (performance.now() - started) / 1000)
            }
        };
    }
};

/** The text of the option a multiple-choice answer names, if the question's options can be read and it names one. */
function chosenOption(pair: TaskPair): string | undefined {
    const choices = choicesFromQuestion(pair.question);
    const index = choices == null ? undefined : parseOption(pair.answer, choices);
    return index === undefined ? undefined : choices![index];
}

function taskRow(id: string, pair: TaskPair, source: TaskRow["source"], round: number, passages: Passage[]): TaskRow {
    return {
        id,
        question: pair.question,
        answer: pair.answer,
        source,
        round,
        choices: null,
        level: null,
        passages: passages.map((p) => ({ title: p.title, text: p.text })),
        // The image's caption and OCR go where synthesis and Image2Text read them (imageOf).
        meta: pair.image == null ? null : JSON.stringify({ image: pair.image })
    };
}
