// Command-line parameters of autoact-train. The defaults here also feed --help.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

// The target modules a LoRA can adapt, as GGUF tensor names blk.<i>.<module>.weight.
extern const std::vector<std::string> k_target_modules;

struct train_params {
    // files
    std::string base;             // base model GGUF
    std::string data;             // tokenized samples (format: native/README.md)
    std::string out;              // final adapter GGUF
    std::string checkpoint;       // checkpoint file; default <out>.ckpt
    std::string adapter_in;       // start from this adapter instead of a fresh one
    std::string agent = "default"; // sub-agent name, recorded in the adapter

    // adapter
    std::vector<std::string> targets = k_target_modules;
    int32_t rank  = 8;
    float   alpha = 16.0f;
    float   lora_dropout = 0.0f; // dropout on the LoRA branch's input while training

    // optimizer (AdamW, decoupled weight decay) and schedule
    float       lr           = 2e-4f;
    std::string schedule     = "cosine"; // constant | linear | cosine (after warm-up)
    int32_t     warmup       = 0;        // warm-up steps, linear from 0
    float       warmup_ratio = 0.0f;     // warm-up as a share of the total steps; used when > 0
    float       beta1        = 0.9f;
    float       beta2        = 0.999f;
    float       eps          = 1e-8f;
    float       weight_decay = 0.0f;
    float       grad_clip    = 1.0f;     // max global gradient norm, 0 = off

    // batches
    int32_t ctx          = 512;  // context length; a longer sample is an error
    int32_t batch        = 1;    // samples per optimizer step (x grad_accum), packed into micro-batches
    int32_t grad_accum   = 1;    // multiplies the samples per step
    int32_t batch_tokens = 0;    // token budget of one packed micro-batch; 0 = ctx
    int32_t epochs     = 1;
    int32_t steps      = 0;   // optimizer steps; 0 = as many as `epochs` take

    // evaluation
    float   eval_fraction = 0.0f; // share of samples held out for eval loss
    int32_t eval_every    = 0;    // steps between eval losses; 0 = only at the end

    // safety
    uint64_t seed             = 42;
    int32_t  checkpoint_every = 0; // steps; 0 = only on SIGINT/SIGTERM and at the end
    bool     resume           = false;

    // machine
    int32_t threads      = 0;  // 0 = all hardware threads
    int32_t n_gpu_layers = 0;  // layers offloaded to a GPU backend (-1 = all)
    std::string mixed_precision = "auto"; // auto | on | off: 16-bit input gradients through frozen weights (frozen_grad_type)
    std::string recompute = "auto";       // auto | on | off | N: recompute each layer's (or the first N layers') activations in the backward pass
    std::string frozen_backward = "auto"; // auto | cached | matmul | out_prod (see --help)
    int32_t memory_available_mib = 0;     // memory planned with; 0 = the machine's available memory
    bool    no_graph_reuse = false; // build a fresh graph for every micro-batch (tests)
    std::string loss_gradient = "forward"; // forward | backward: where the loss's gradient is computed (tests)
    int32_t backward_slice = 8 * 1024 * 1024; // elements of a slice of a large frozen weight's input gradient

    // modes
    bool    init_only      = false; // write the fresh adapter to --out and exit
    int32_t grad_check     = 0;     // compare N gradient entries with central differences and exit
    float   grad_check_eps = 1e-2f; // finite-difference step (relative to the entry, at least this absolute)
    std::string grad_dump;          // write the first step's loss and gradients to this file and exit
    bool    verbose        = false; // llama.cpp's own logs on stderr
    bool    profile        = false; // time every node of the training passes after the first step

    std::set<std::string> given; // the flags the command line set, by name ("--rank")
};

// Parses argv; throws input_error naming the flag on a bad one. Returns false after --help.
bool train_params_parse(int argc, char ** argv, train_params & params);

// The configuration as a JSON object (recorded in the adapter's autoact.train_config).
std::string train_params_json(const train_params & params);
// --recompute N: the count of first layers whose activations are recomputed; 0 for auto, on or off
int recompute_count(const train_params & params);
