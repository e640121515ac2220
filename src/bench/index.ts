// Benchmarks across hardware: inference and training tokens/s with a fingerprint, and the report.
export { benchInfer, resolveInferOptions, gpuChoices, inferBenchDefaults, type InferBenchOptions } from "./infer.js";
export { benchTrain, trainBenchDefaults, type TrainBenchOptions } from "./train.js";
export { torchDtypes, type TorchDtype } from "./torch-reference.js";
export { renderBenchReport, type BenchReport, type BenchReportOptions } from "./report.js";
export { writeBenchResult, checkResultOut, loadBenchResults, benchRows, resultStem, defaultResultsDir, type WriteResultOptions, type LoadedResult } from "./store.js";
export { validateBenchResult, assertBenchResult, BENCH_RESULT_SCHEMA, type BenchResult, type BenchTest, type Fingerprint, type ModelFingerprint, type BenchKind, type BenchEngine } from "./result.js";
export { collectFingerprint, modelFingerprint, nvidiaGpu, softwareVersions, machineLabel } from "./fingerprint.js";
export { runLlamaBench, llamaBenchArgs, type LlamaBenchOptions, type LlamaBenchRun } from "./llama-bench.js";
export { resolveBenchModel, resolveLoraSpecs, writeZeroLoraAdapter, benchCacheDir, loraTargets, type ZeroAdapterOptions } from "./models.js";
export { barChart, lineChart } from "./svg.js";
export { mean, stddev, randomTokens } from "./stats.js";
