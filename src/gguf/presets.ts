import fs from "node:fs";
import path from "node:path";
import { InputError } from "../util/errors.js";
import { packageRoot } from "../util/package.js";
import type { SyntheticModelOptions } from "./synth.js";

/** A synthetic model's shape: writeSyntheticModel's options without the output file and seed. */
export type SyntheticPreset = Omit<SyntheticModelOptions, "out" | "seed" | "name"> & { description: string };

export interface RealModelPreset {
    description: string;
    /** An `hf:` URI node-llama-cpp resolves (and caches), ... */
    uri?: string;
    /** ... or a path, relative to the package root. */
    path?: string;
    arch: string;
    params: number;
    chatTemplate: string;
    notes?: string;
}

export interface ModelPresets {
    synthetic: Record<string, SyntheticPreset>;
    real: { default: string; models: Record<string, RealModelPreset> };
}

/** The presets file: models/presets.json under the package root. */
export const presetsFile = path.join(packageRoot, "models", "presets.json");

let cached: ModelPresets | undefined;

export function loadModelPresets(file = presetsFile): ModelPresets {
    if (file === presetsFile && cached != null)
        return cached;
    let parsed: ModelPresets;
    try {
        parsed = JSON.parse(fs.readFileSync(file, "utf8")) as ModelPresets;
    } catch (error) {
        throw new InputError(`cannot read model presets ${file}: ${(error as Error).message}`);
    }
    if (parsed.synthetic == null || parsed.real?.models == null)
        throw new InputError(`${file}: expected "synthetic" and "real.models" objects`);
    if (file === presetsFile)
        cached = parsed;
    return parsed;
}

export function syntheticPreset(name: string): SyntheticPreset {
    const presets = loadModelPresets().synthetic;
    const preset = presets[name];
    if (preset == null)
        throw new InputError(`unknown synthetic preset "${name}": expected one of ${Object.keys(presets).join(", ")}`);
    return preset;
}

/** A real model preset by name (the default one when no name is given). */
export function realModelPreset(name?: string): RealModelPreset & { name: string } {
    const real = loadModelPresets().real;
    const key = name ?? real.default;
    const preset = real.models[key];
    if (preset == null)
        throw new InputError(`unknown model preset "${key}": expected one of ${Object.keys(real.models).join(", ")}`);
    return { ...preset, name: key };
}

/** Where a real preset's model comes from: its `hf:` URI, or its path resolved against the package root. */
export function realModelSource(preset: RealModelPreset): string {
    if (preset.uri != null)
        return preset.uri;
    if (preset.path != null)
        return path.resolve(packageRoot, preset.path);
    throw new InputError(`model preset "${preset.description}" has neither uri nor path`);
}
