import type { CommandModule } from "yargs";
import { corpusCommand } from "./corpus.js";
import { runCommand } from "./run.js";
import { stageCommand } from "./stage.js";
import { inspectCommand } from "./inspect.js";
import { modelCommand } from "./model.js";
import { trainCommand } from "./train.js";
import { nativeCommand } from "./native.js";
import { benchCommand } from "./bench.js";
import { importCommand } from "./import.js";
import { deployCommand } from "./deploy.js";
import { agentCommand } from "./agent.js";

// Every CLI command, in the order `autoact --help` lists them. One file per command;
// each is a thin adapter over one library function.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [
    runCommand,
    stageCommand("instruct"),
    stageCommand("select-tools"),
    stageCommand("synth"),
    stageCommand("filter"),
    stageCommand("split"),
    stageCommand("eval"),
    importCommand,
    corpusCommand,
    inspectCommand,
    modelCommand,
    trainCommand,
    nativeCommand,
    benchCommand,
    deployCommand,
    agentCommand,
];
