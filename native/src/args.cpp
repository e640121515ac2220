#include "args.h"
#include "common.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <functional>
#include <map>

const std::vector<std::string> k_target_modules = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down",
};

namespace {

struct flag {
    const char * name;
    const char * help;
    std::function<std::string(const train_params &)> show; // current (default) value for --help
    std::function<void(train_params &, const std::string &)> set; // nullptr value for switches
    bool is_switch = false;
};

int64_t parse_int(const std::string & flag, const std::string & v, int64_t lo, int64_t hi) {
    errno = 0;
    char * end = nullptr;
    const long long x = strtoll(v.c_str(), &end, 10);
    if (errno || end == v.c_str() || *end != '\0' || x < lo || x > hi) {
        throw input_error(string_format("%s: expected an integer in [%lld, %lld], got '%s'", flag.c_str(), (long long) lo, (long long) hi, v.c_str()));
    }
    return x;
}

std::string parse_choice(const std::string & flag, const std::string & v, const std::vector<std::string> & choices) {
    if (std::find(choices.begin(), choices.end(), v) != choices.end()) {
        return v;
    }
    std::string expected;
    for (size_t i = 0; i < choices.size(); ++i) {
        expected += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + choices[i];
    }
    throw input_error(flag + ": expected " + expected + ", got '" + v + "'");
}

float parse_float(const std::string & flag, const std::string & v, double lo, double hi) {
    errno = 0;
    char * end = nullptr;
    const double x = strtod(v.c_str(), &end);
    if (errno || end == v.c_str() || *end != '\0' || !(x >= lo && x <= hi)) {
        throw input_error(string_format("%s: expected a number in [%g, %g], got '%s'", flag.c_str(), lo, hi, v.c_str()));
    }
    return (float) x;
}

// --recompute's words; anything else it takes is a count of first layers
bool is_recompute_word(const std::string & v) {
    return v == "auto" || v == "on" || v == "off";
}

std::vector<std::string> split_list(const std::string & v) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= v.size()) {
        const size_t comma = v.find(',', start);
        const std::string item = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!item.empty()) {
            out.push_back(item);
        }
        if (comma == std::string::npos) {
            break;
        }
        start = comma + 1;
    }
    return out;
}

#define FLAG_STR(NAME, FIELD, HELP) \
    flag{NAME, HELP, [](const train_params & p) { return p.FIELD; }, [](train_params & p, const std::string & v) { p.FIELD = v; }}
#define FLAG_INT(NAME, FIELD, LO, HI, HELP) \
    flag{NAME, HELP, [](const train_params & p) { return std::to_string(p.FIELD); }, \
         [](train_params & p, const std::string & v) { p.FIELD = (decltype(p.FIELD)) parse_int(NAME, v, LO, HI); }}
#define FLAG_FLOAT(NAME, FIELD, LO, HI, HELP) \
    flag{NAME, HELP, [](const train_params & p) { return string_format("%g", p.FIELD); }, \
         [](train_params & p, const std::string & v) { p.FIELD = parse_float(NAME, v, LO, HI); }}
// a string field that takes one of the values listed after HELP
#define FLAG_CHOICE(NAME, FIELD, HELP, ...) \
    flag{NAME, HELP, [](const train_params & p) { return p.FIELD; }, \
         [](train_params & p, const std::string & v) { p.FIELD = parse_choice(NAME, v, { __VA_ARGS__ }); }}
#define FLAG_SWITCH(NAME, FIELD, HELP) \
    flag{NAME, HELP, [](const train_params & p) { return std::string(p.FIELD ? "on" : "off"); }, \
         [](train_params & p, const std::string &) { p.FIELD = true; }, true}

const std::vector<flag> & flags() {
    static const std::vector<flag> all = {
        FLAG_STR("--base", base, "base model GGUF (required)"),
        FLAG_STR("--data", data, "tokenized samples, see native/README.md (required unless --init-only)"),
        FLAG_STR("--out", out, "final adapter GGUF (required)"),
        FLAG_STR("--checkpoint", checkpoint, "checkpoint file (default <out>.ckpt)"),
        FLAG_STR("--adapter-in", adapter_in, "start from this adapter GGUF instead of a fresh one"),
        FLAG_STR("--agent", agent, "sub-agent name recorded in the adapter (autoact.agent)"),
        flag{"--targets", "comma-separated target modules",
             [](const train_params & p) { return join_list(p.targets); },
             [](train_params & p, const std::string & v) {
                 p.targets = split_list(v);
                 if (p.targets.empty()) {
                     throw input_error("--targets: name at least one of " + join_list(k_target_modules));
                 }
                 for (size_t i = 0; i < p.targets.size(); ++i) {
                     const auto & t = p.targets[i];
                     if (std::find(k_target_modules.begin(), k_target_modules.end(), t) == k_target_modules.end()) {
                         throw input_error("--targets: unknown target module '" + t + "' (known: " + join_list(k_target_modules) + ")");
                     }
                     if (std::find(p.targets.begin(), p.targets.begin() + i, t) != p.targets.begin() + i) {
                         throw input_error("--targets: '" + t + "' is named twice");
                     }
                 }
             }},
        FLAG_INT("--rank", rank, 1, 4096, "LoRA rank"),
        FLAG_FLOAT("--alpha", alpha, 1e-6, 1e6, "LoRA alpha (the update is scaled by alpha/rank)"),
        FLAG_FLOAT("--lora-dropout", lora_dropout, 0.0, 0.9, "dropout on the input of the LoRA branch while training"),
        FLAG_FLOAT("--lr", lr, 0.0, 1e30, "peak learning rate"),
        FLAG_CHOICE("--schedule", schedule, "learning-rate schedule after warm-up: constant | linear | cosine", "constant", "linear", "cosine"),
        FLAG_INT("--warmup", warmup, 0, 1 << 30, "warm-up steps (linear from 0)"),
        FLAG_FLOAT("--warmup-ratio", warmup_ratio, 0.0, 1.0, "warm-up as a share of the total steps (used instead of --warmup when > 0)"),
        FLAG_FLOAT("--beta1", beta1, 0.0, 0.999999, "AdamW beta1"),
        FLAG_FLOAT("--beta2", beta2, 0.0, 0.99999999, "AdamW beta2"),
        FLAG_FLOAT("--eps", eps, 0.0, 1.0, "AdamW epsilon"),
        FLAG_FLOAT("--weight-decay", weight_decay, 0.0, 1.0, "AdamW decoupled weight decay"),
        FLAG_FLOAT("--grad-clip", grad_clip, 0.0, 1e30, "max global gradient norm (0 = off)"),
        FLAG_INT("--ctx", ctx, 8, 1 << 20, "context length; a longer sample is an error"),
        FLAG_INT("--batch", batch, 1, 1 << 20, "samples per optimizer step (times --grad-accum), packed into micro-batches"),
        FLAG_INT("--grad-accum", grad_accum, 1, 1 << 20, "multiplies the samples per optimizer step"),
        FLAG_INT("--batch-tokens", batch_tokens, 0, 1 << 24, "token budget of one packed micro-batch: blocks of up to --ctx tokens side by side, each sample within a block and attending only to itself (attention memory grows with the budget times the block); 0 = one block"),
        FLAG_INT("--epochs", epochs, 1, 1 << 20, "epochs (when --steps is 0)"),
        FLAG_INT("--steps", steps, 0, 1 << 30, "optimizer steps (0 = as many as --epochs take)"),
        FLAG_FLOAT("--eval-fraction", eval_fraction, 0.0, 0.9, "share of samples held out for the eval loss"),
        FLAG_INT("--eval-every", eval_every, 0, 1 << 30, "steps between eval losses (0 = only at the end)"),
        flag{"--seed", "seed of the initialization, the split and the data order",
             [](const train_params & p) { return std::to_string(p.seed); },
             [](train_params & p, const std::string & v) { p.seed = (uint64_t) parse_int("--seed", v, 0, INT64_MAX); }},
        FLAG_INT("--checkpoint-every", checkpoint_every, 0, 1 << 30, "steps between checkpoints (0 = only on SIGINT/SIGTERM)"),
        FLAG_SWITCH("--resume", resume, "continue from the checkpoint when it exists"),
        FLAG_INT("--threads", threads, 0, 1024, "CPU threads (0 = all hardware threads)"),
        FLAG_INT("--n-gpu-layers", n_gpu_layers, -1, 1 << 20, "layers offloaded to a GPU backend (-1 = all)"),
        FLAG_CHOICE("--mixed-precision", mixed_precision, "auto | on | off: input gradients through frozen weights in 16 bits (F16 on a GPU, BF16 on a CPU that multiplies BF16 natively, AVX512-BF16, else F16) and, with on and such a CPU, the forward matmuls through F32/F16 weights on BF16 copies (the loss within ~2e-2 of the model's); auto: the input gradients where faster (a GPU or such a CPU), not for --grad-check", "auto", "on", "off"),
        flag{"--recompute", "auto | on | off | N: recompute each layer's activations from its input in the backward pass instead of keeping every layer's (memory for one layer's; about one more forward pass of time), or only the first N layers' (N/L of that time; N >= L: every layer's); auto: on with a GPU; on a CPU, where a training graph's activations would not fit in the memory available, the first layers' as many as it needs, then every layer's",
             [](const train_params & p) { return p.recompute; },
             [](train_params & p, const std::string & v) {
                 if (!v.empty() && v.find_first_not_of("0123456789") == std::string::npos) {
                     p.recompute = std::to_string(parse_int("--recompute", v, 1, 1 << 20));
                 } else if (is_recompute_word(v)) {
                     p.recompute = v;
                 } else {
                     throw input_error("--recompute: expected auto, on, off or a count of first layers, got '" + v + "'");
                 }
             }},
        FLAG_CHOICE("--frozen-backward", frozen_backward, "auto | cached | matmul | out_prod: input gradients through frozen weights as matmuls with transposed copies made once (cached) or in each pass (matmul), or upstream's OUT_PROD (the tests' reference); on a CPU the forward pass takes the weights as llama.cpp repacks them for the CPU's own kernels (AMX tiles, AVX2 blocks) but with out_prod, and the copies of those come from the base file; auto = cached on a CPU where the copies fit beside the model and the first training graph as measured in the memory available (--memory-available), else matmul", "auto", "cached", "matmul", "out_prod"),
        FLAG_INT("--memory-available", memory_available_mib, 0, 1 << 30, "MiB of memory the trainer plans with (--frozen-backward auto); 0 = what the machine has available at start (MemAvailable, or a cgroup's limit or ulimit -v where lower)"),
        FLAG_SWITCH("--no-graph-reuse", no_graph_reuse, "build a fresh graph for every micro-batch (tests)"),
        FLAG_CHOICE("--loss-gradient", loss_gradient, "forward | backward: the loss's gradient computed in the forward pass, a chunk of rows at a time, or the whole loss through ggml's backward pass (what a model whose logits are not a plain matmul gets; tests compare the two)", "forward", "backward"),
        FLAG_INT("--backward-slice", backward_slice, 1, 1 << 30, "a frozen weight of more than this many elements gets its input gradient (matmul backward) in equal slices of rows of about this many (whole blocks of 32 rows), and the loss takes as many output rows at a time as keep their logits within twice it (less memory; tests set it small)"),
        FLAG_SWITCH("--init-only", init_only, "write the freshly initialized adapter to --out and exit"),
        FLAG_INT("--grad-check", grad_check, 0, 1 << 20, "compare N gradient entries with central differences and exit"),
        FLAG_FLOAT("--grad-check-eps", grad_check_eps, 1e-8, 1.0, "finite-difference step of --grad-check"),
        FLAG_STR("--grad-dump", grad_dump, "write the first step's loss and gradients (F32) to this file and exit (tests)"),
        FLAG_SWITCH("--verbose", verbose, "print llama.cpp's own logs on stderr"),
        FLAG_SWITCH("--profile", profile, "time every node of the training passes after the first step (one at a time, so slower) and print the top ones"),
    };
    return all;
}

void print_help(const char * argv0) {
    const train_params defaults;
    fprintf(stderr, "usage: %s --base MODEL.gguf --data SAMPLES.bin --out ADAPTER.gguf [options]\n\n", argv0);
    fprintf(stderr, "Trains a LoRA adapter on a GGUF base; progress as JSON lines on stdout.\n\n");
    for (const auto & f : flags()) {
        const std::string shown = f.show(defaults);
        fprintf(stderr, "  %-20s %s%s\n", f.name, f.help, shown.empty() ? "" : (" [" + shown + "]").c_str());
    }
}

} // namespace

bool train_params_parse(int argc, char ** argv, train_params & params) {
    std::map<std::string, const flag *> by_name;
    for (const auto & f : flags()) {
        by_name[f.name] = &f;
    }
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            print_help(argv[0]);
            return false;
        }
        std::string value;
        bool has_value = false;
        const size_t eq = arg.find('=');
        if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
            value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
            has_value = true;
        }
        const auto it = by_name.find(arg);
        if (it == by_name.end()) {
            throw input_error("unknown flag '" + arg + "' (see --help)");
        }
        const flag & f = *it->second;
        if (!f.is_switch && !has_value) {
            if (i + 1 >= argc) {
                throw input_error(arg + ": missing value");
            }
            value = argv[++i];
        }
        f.set(params, value);
        params.given.insert(f.name);
    }
    if (params.base.empty()) {
        throw input_error("--base is required");
    }
    if (params.out.empty()) {
        throw input_error("--out is required");
    }
    if (params.data.empty() && !params.init_only) {
        throw input_error("--data is required");
    }
    if (params.checkpoint.empty()) {
        params.checkpoint = params.out + ".ckpt";
    }
    return true;
}

int recompute_count(const train_params & p) {
    return is_recompute_word(p.recompute) ? 0 : std::stoi(p.recompute);
}

std::string train_params_json(const train_params & p) {
    json_line j;
    j.str("agent", p.agent).strings("targets", p.targets).integer("rank", p.rank).num("alpha", p.alpha).num("lora_dropout", p.lora_dropout)
     .num("lr", p.lr).str("schedule", p.schedule).integer("warmup", p.warmup).num("warmup_ratio", p.warmup_ratio)
     .num("beta1", p.beta1).num("beta2", p.beta2).num("eps", p.eps).num("weight_decay", p.weight_decay)
     .num("grad_clip", p.grad_clip).integer("ctx", p.ctx).integer("batch", p.batch)
     .integer("grad_accum", p.grad_accum).integer("batch_tokens", p.batch_tokens).integer("epochs", p.epochs).integer("steps", p.steps)
     .num("eval_fraction", p.eval_fraction).integer("eval_every", p.eval_every)
     .str("seed", std::to_string(p.seed)).str("mixed_precision", p.mixed_precision).str("recompute", p.recompute);
    return j.text();
}
