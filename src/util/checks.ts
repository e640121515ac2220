import { InputError } from "./errors.js";

/** `value` when it is a whole number of at least 1; else an InputError naming `what` (a flag or key). */
export function positiveInteger(value: unknown, what: string): number {
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1)
        throw new InputError(`${what} must be a positive integer, got ${String(value)}`);
    return value;
}
