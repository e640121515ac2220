export { normalizeAnswer, textKey, exactMatch, tokenF1, scoreAnswer, type F1Result } from "./qa.js";
export { parseOption, optionMatch, optionLetter } from "./choice.js";
export { mean, meanByGroup, type GroupStats } from "./aggregate.js";
