// The bridge to the native LoRA trainer: build it, feed it tokenized samples, run it.
export { ensureNativeBuild, findNativeBuild, nativeBackends, type NativeBackend, type NativeBuild, type NativeBuildOptions, type NativeBuildProgress } from "./native-build.js";
export { encodeTrainingSamples, decodeTrainingSamples, writeTrainingSamples, type TokenizedSample } from "./samples-file.js";
export { loadTrainingRows, rowsForAgent, agentsInRows, tokenizeRows, type TrainingRow } from "./dataset.js";
export { trainAdapter, trainerArgs, INTERRUPTED_EXIT_CODE, type TrainAdapterOptions, type TrainAdapterResult, type TrainDone, type TrainStart, type TrainStep } from "./trainer.js";
export { trainAgents, tokenizeWithFormatter, trainableAgents, trainingLeftovers, type SampleFit, type TrainAgentsOptions, type TrainedAgent } from "./train-agents.js";
export { createTrainProgress } from "./progress.js";
export {
    trainOptions, targetModules, learningRateSchedules, mixedPrecisionModes, resolveTrainOptions, checkTrainOptions, assertTrainOptions,
    trainOptionArgs, trainConfigDefaults, trainOptionsFromConfig, trainCliOptions, trainOptionsFromCli, trainOption,
    type TrainHyperParams, type ResolvedTrainHyperParams, type TrainConfig, type TrainOptionSpec, type TargetModule
} from "./options.js";
