export type { TaskExample, ContextParagraph, DatasetFormat } from "./types.js";
export { loadTasks, parseOptions, ocrText, scienceqaImage, gradeBand, type LoadTasksOptions } from "./loaders.js";
export { readJsonRecords, readJsonFile, detectRecordShape, type JsonRecord } from "./records.js";
export { readDatasetDescriptor, hotpotqaSplitIds, type DatasetDescriptor } from "./descriptor.js";
