import { RuntimeFailure } from "../../util/errors.js";
import type { StageDefinition } from "../context.js";

// Wired to src/train once the native trainer's bridge lands.
export const trainStage: StageDefinition = {
    name: "train",
    description: "LoRA training of the plan, tool and reflect sub-agents",
    usesModel: true,
    inputTables: () => ["samples.arrow"],
    inputValues: (context) => ({ train: context.config.train, template: context.config.model.template, limit: context.limit }),
    async run() {
        throw new RuntimeFailure("the train stage is not wired yet");
    }
};
