// The Arrow table layer in one import: schemas and row types, reading and writing,
// inspection and export. (Dataset loaders live in ./datasets/.)
export * from "./columns.js";
export * from "./schemas.js";
export * from "./validate.js";
export * from "./table-io.js";
export * from "./convert.js";
export * from "./compare.js";
export * from "./export.js";
export * from "./inspect.js";
export * from "./render.js";
