// The LoRA adapter as the trainer holds it: host copies of every lora_a/lora_b with their AdamW
// moments, created fresh (A random, B zero) or read from a GGUF, and written as the GGUF adapter
// llama.cpp loads (general.type=adapter, adapter.type=lora, adapter.lora.alpha, base arch).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

struct ggml_tensor;

// What the trainer needs to know of the base model, read from its GGUF header.
struct base_info {
    std::string arch;
    std::string name; // the base's general.name, else its file name: recorded in adapters it trains
    std::map<std::string, std::vector<int64_t>> tensor_ne; // name -> ne
    std::map<std::string, int>                  tensor_type; // name -> ggml_type
    bool split = false; // the first of several files (split.count > 1): these tensors are its own only
};

base_info base_info_read(const std::string & path);

struct lora_tensor {
    std::string        name;  // <base weight>.lora_a | .lora_b
    int64_t            ne0 = 0, ne1 = 0;
    std::vector<float> value; // parameters
    std::vector<float> m, v;  // AdamW moments
    ggml_tensor *      dev  = nullptr; // the loaded adapter's tensor (backend memory)
    ggml_tensor *      grad = nullptr; // gradient accumulator (backend memory)
};

struct lora_adapter {
    std::string              arch;
    float                    alpha = 0.0f;
    int32_t                  rank  = 0;
    std::vector<lora_tensor> tensors; // sorted by name
};

// A (ne [n_in, r]) uniform in +-1/sqrt(n_in), B (ne [r, n_out]) zero; b_std > 0 makes B random
// too (used by --grad-check, where a zero B would leave A without gradient).
lora_adapter lora_create(const base_info & base, const std::vector<std::string> & targets, int32_t rank, float alpha,
                         uint64_t seed, float b_scale = 0.0f);

// Reads an adapter GGUF; throws input_error if it is no LoRA adapter or does not fit `base`.
lora_adapter lora_read(const std::string & path, const base_info & base);

// Writes the adapter GGUF to a temporary name, then renames it to `path`.
void lora_write(const std::string & path, const lora_adapter & adapter, const std::map<std::string, std::string> & meta);

// Number of trainable parameters.
int64_t lora_n_params(const lora_adapter & adapter);

// The modules the adapter adapts (blk.<i>.<module>.weight), in --targets' order, others after.
std::vector<std::string> lora_targets(const lora_adapter & adapter);
