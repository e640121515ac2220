// autoact-train: trains a LoRA adapter (GGUF) on a frozen GGUF base with llama.cpp's own graphs.
//
// The loop: load the base, create or resume the adapter, attach it; for each step, pack the
// step's samples into micro-batches of one shape, run each forward and backward through one
// reused graph (loss only on the response tokens), then clip and AdamW on the device; log one
// JSON line; checkpoint when asked or interrupted; write the adapter GGUF at the end
// (temporary name, then rename).
//
// Exit codes: 0 done, 2 bad input, 1 failure, 3 NaN/Inf loss (last good state checkpointed),
// 130 interrupted by SIGINT/SIGTERM/SIGHUP (checkpointed).

#include "adapter.h"
#include "args.h"
#include "checkpoint.h"
#include "common.h"
#include "dataset.h"
#include "memory.h"
#include "optimizer.h"
#include "pack.h"
#include "pass.h"
#include "profile.h"

#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "llama.h"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <thread>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

namespace {

volatile std::sig_atomic_t g_interrupted = 0;

void on_signal(int) {
    g_interrupted = 1;
}

bool g_verbose = false;

// llama.cpp's errors, held back until we know what failed: a runtime failure prints them before
// its own line; an input error's one line says all (and --verbose shows everything as it comes)
std::string g_llama_errors;

void on_llama_log(ggml_log_level level, const char * text, void *) {
    if (g_verbose) {
        fputs(text, stderr);
    } else if (level == GGML_LOG_LEVEL_ERROR) {
        g_llama_errors += text;
    }
}

// ggml ends the process on a failed check (GGML_ASSERT) with a debugger's backtrace on stdout,
// where our JSON lines go. The one seen in use is ggml_init's failed malloc under a tight memory
// limit; for it and any other, one error line and exit 1 instead (--verbose keeps ggml's own).
[[noreturn]] void on_ggml_abort(const char * message) {
    const std::string what = strstr(message, "mem_buffer != NULL") != nullptr
        ? std::string("out of memory: llama.cpp could not allocate a graph's bookkeeping (ggml_init); lower --batch-tokens or raise the memory limit")
        : std::string("llama.cpp stopped on a failed check: ") + message + " (rerun with --verbose for its backtrace)";
    json_line().str("event", "error").str("kind", "runtime").str("message", what).emit();
    fprintf(stderr, "%sautoact-train: %s\n", g_llama_errors.c_str(), what.c_str());
    fflush(stdout);
    fflush(stderr);
    std::_Exit(1);
}

// Warm-up steps: --warmup-ratio of the total when given, else --warmup.
int64_t warmup_steps(const train_params & p, int64_t total) {
    return p.warmup_ratio > 0.0f ? (int64_t) std::llround(p.warmup_ratio * (double) total) : p.warmup;
}

double lr_at(const train_params & p, int64_t step, int64_t total) {
    const int64_t warmup = warmup_steps(p, total);
    if (warmup > 0 && step <= warmup) {
        return p.lr * (double) step / warmup;
    }
    if (p.schedule == "constant") {
        return p.lr;
    }
    const double decay_steps = (double) std::max<int64_t>(1, total - warmup);
    const double progress = std::min(1.0, (double) (step - warmup - 1) / decay_steps);
    if (p.schedule == "linear") {
        return p.lr * (1.0 - progress);
    }
    return p.lr * 0.5 * (1.0 + std::cos(M_PI * progress));
}

// The bytes of the copies --frozen-backward cached makes once (an upper bound: the first layer's
// Q, K and V need none): every 2-D weight of the blocks and the output layer (the embeddings where
// they are tied) transposed in the input gradients' type, with BF16 forward copies the F32/F16
// ones again.
uint64_t weight_copy_bytes(const base_info & base, ggml_type type, bool forward_copies) {
    const std::string output = base.tensor_ne.count("output.weight") ? "output.weight" : "token_embd.weight";
    uint64_t bytes = 0;
    for (const auto & [name, ne] : base.tensor_ne) {
        if ((name.rfind("blk.", 0) != 0 && name != output) || ne.size() < 2 || ne[1] < 2) {
            continue; // norms and biases: no matmul
        }
        uint64_t n = 1;
        for (const int64_t d : ne) {
            n *= (uint64_t) d;
        }
        const int wtype = base.tensor_type.at(name);
        const bool forward_too = forward_copies && (wtype == GGML_TYPE_F32 || wtype == GGML_TYPE_F16);
        bytes += n * ggml_type_size(type) * (forward_too ? 2 : 1);
    }
    return bytes;
}

// The ways a training pass may hold its memory that the options leave, the fastest first: the
// copies made once, else in each pass (k_copies_in_each_pass_cost, from the mapped file), then the
// same with the first layers' activations recomputed (as many as the memory needs: that share of
// one more forward pass), then with every layer's (about one more forward pass). The first is
// the one tried; a training graph measured too large for the memory takes the next (pass_fits).
std::vector<trainer_graph::memory_plan> memory_plans(const train_params & p, const base_info & base, bool on_gpu, ggml_type grad_type,
        bool forward_copies, uint64_t model_bytes, uint64_t memory_available) {
    std::vector<bool> once; // the copies' ways
    if (p.frozen_backward == "out_prod" || p.frozen_backward == "matmul" || (p.frozen_backward == "auto" && on_gpu)) {
        once = { false }; // a GPU has no room for a second model
    } else if (p.frozen_backward == "cached") {
        once = { true };
    } else {
        // the copies would be the largest allocation (2 bytes a weight in BF16 against a Q4_K's
        // 0.56): where they and the model alone exceed what the machine has, only in each pass
        const uint64_t copies = weight_copy_bytes(base, grad_type, forward_copies);
        if (memory_available > 0 && model_bytes + copies > memory_available) {
            once = { false };
            json_line().str("event", "notice").str("message", string_format(
                "the frozen weights' transposed copies (%.2f GiB) with the model (%.2f GiB) would not fit in the %.2f GiB of memory "
                "available: the copies are made in each pass instead (%s, without the copies' memory)",
                copies / 1073741824.0, model_bytes / 1073741824.0, memory_available / 1073741824.0, k_copies_in_each_pass_cost)).emit();
        } else {
            // a split model's weights are repacked only with the copies made once (its other files
            // are not mapped for copies in each pass): that way stands
            once = base.split ? std::vector<bool>{ true } : std::vector<bool>{ true, false };
        }
    }
    using way = trainer_graph::recompute_way;
    const int count = recompute_count(p); // --recompute N
    const std::vector<way> recompute = count > 0 ? std::vector<way>{ way::first_layers }
                                     : p.recompute == "on" || (p.recompute == "auto" && on_gpu) ? std::vector<way>{ way::all }
                                     : p.recompute == "off" ? std::vector<way>{ way::none } : std::vector<way>{ way::none, way::first_layers, way::all };
    std::vector<trainer_graph::memory_plan> plans;
    for (const way r : recompute) {
        for (const bool c : once) {
            plans.push_back({ c, r, count }); // 0 first layers: as many as fit (next_memory_plan)
        }
    }
    return plans;
}

// How many layers' activations the training passes recompute (the done line's count).
int recomputed_layers(const trainer_graph & tg) {
    using way = trainer_graph::recompute_way;
    return tg.recompute == way::all ? tg.n_layers : tg.recompute == way::first_layers ? tg.recompute_layers : 0;
}

// A given adapter brings its own rank, alpha and targets: they are what trains, and what the new
// adapter's autoact.train_config records. A flag given that says otherwise is an error, not a wish.
void take_adapter_shape(train_params & p, const lora_adapter & a) {
    const std::vector<std::string> targets = lora_targets(a);
    auto sorted = [](std::vector<std::string> v) {
        std::sort(v.begin(), v.end());
        return v;
    };
    const struct {
        const char * flag;
        bool         same;
        std::string  given, adapters;
    } shape[] = {
        { "--rank", p.rank == a.rank, std::to_string(p.rank), std::to_string(a.rank) },
        { "--alpha", p.alpha == a.alpha, string_format("%g", p.alpha), string_format("%g", a.alpha) },
        { "--targets", sorted(p.targets) == sorted(targets), join_list(p.targets), join_list(targets) },
    };
    for (const auto & s : shape) {
        if (p.given.count(s.flag) && !s.same) {
            throw input_error(string_format("%s %s: the adapter %s (--adapter-in) has %s %s, and an adapter trains with its own "
                                            "rank, alpha and targets (leave %s out)", s.flag, s.given.c_str(), p.adapter_in.c_str(),
                                            s.flag + 2, s.adapters.c_str(), s.flag));
        }
    }
    p.rank    = a.rank;
    p.alpha   = a.alpha;
    p.targets = targets;
}

// The settings a resumed run must share with the checkpoint, or its result would differ.
std::map<std::string, std::string> run_structure(const train_params & p, const lora_adapter & a, const dataset & ds, int64_t total_steps) {
    std::string targets;
    for (const auto & t : a.tensors) {
        targets += t.name + ";";
    }
    return {
        { "rank", std::to_string(a.rank) },
        { "alpha", string_format("%g", a.alpha) },
        { "tensors_fnv1a", std::to_string(string_fnv1a(targets)) },
        { "seed", std::to_string(p.seed) },
        { "batch", std::to_string(p.batch) },
        { "grad_accum", std::to_string(p.grad_accum) },
        { "eval_fraction", string_format("%g", p.eval_fraction) },
        { "data_fnv1a", std::to_string(file_fnv1a(p.data)) },
        { "n_train", std::to_string(ds.train.size()) },
        { "total_steps", std::to_string(total_steps) },
        { "lr", string_format("%g", p.lr) },
        { "schedule", p.schedule },
        { "warmup_steps", std::to_string(warmup_steps(p, total_steps)) },
        { "adamw", string_format("%g,%g,%g,%g", p.beta1, p.beta2, p.eps, p.weight_decay) },
        { "grad_clip", string_format("%g", p.grad_clip) },
        { "batch_tokens", std::to_string(p.batch_tokens) },
        { "lora_dropout", string_format("%g", p.lora_dropout) },
        { "frozen_backward", p.frozen_backward + "/" + p.mixed_precision },
        { "start", p.adapter_in.empty() ? "fresh" : string_format("adapter %016llx", (unsigned long long) file_fnv1a(p.adapter_in)) },
    };
}

// The type of the input gradients through the frozen weights: F32, or 16 bits with mixed
// precision: F16 on a GPU (its tensor cores), BF16 on a CPU whose build multiplies BF16 pairs
// natively (AVX512-BF16: twice F32's products an instruction), else F16 (half the copies'
// memory, F32's speed). `auto` is on where 16 bits are faster, but not for the gradient check:
// finite differences check the exact gradient. (`on` with BF16 also puts the forward matmuls on
// BF16 copies: tg.forward_copies.)
ggml_type frozen_grad_type(const train_params & p, bool on_gpu) {
    const bool cpu_bf16 = ggml_cpu_has_avx512_bf16() != 0;
    const bool mixed = p.mixed_precision == "on" || (p.mixed_precision == "auto" && (on_gpu || cpu_bf16) && p.grad_check == 0);
    if (!mixed) {
        return GGML_TYPE_F32;
    }
    return !on_gpu && cpu_bf16 ? GGML_TYPE_BF16 : GGML_TYPE_F16;
}

std::map<std::string, std::string> adapter_meta(const train_params & p, const base_info & base) {
    return {
        { "autoact.agent", p.agent },
        { "general.base_model.0.name", base.name },
        { "autoact.train_config", train_params_json(p) },
        { "general.name", "autoact " + p.agent + " adapter" },
    };
}

// Mean NLL of the held-out samples' response tokens, packed like training.
double eval_loss(trainer_graph & tg, const std::vector<sample> & eval, pack_shape shape) {
    std::vector<const sample *> all;
    int64_t n = 0;
    for (const auto & smp : eval) {
        all.push_back(&smp);
        n += (int64_t) smp.labels.size();
    }
    double sum = 0.0;
    for (const micro_batch & mb : pack_samples(all, shape, 1.0f, pack_max_labels(all, shape))) {
        sum += trainer_pass(tg, mb, false);
    }
    return n > 0 ? sum / (double) n : NAN;
}

// One sample alone in a micro-batch, its loss the mean over its response tokens.
micro_batch single(const sample & smp, pack_shape shape) {
    return pack_samples({ &smp }, shape, 1.0f / (float) smp.labels.size()).front();
}

int run_grad_check(const train_params & p, trainer_graph & tg, const dataset & ds, pack_shape shape) {
    lora_adapter & a = *tg.adapter;
    const sample & smp = ds.train[0];
    const micro_batch mb = single(smp, shape);
    trainer_grads_zero(tg);
    const double loss0 = trainer_pass(tg, mb, true);
    json_line().str("event", "grad_check_start").integer("sample", smp.index).num("loss", loss0)
        .integer("n_outputs", (int64_t) smp.labels.size()).emit();

    rng64 rng(p.seed ^ 0x9c4ec4ull);
    std::vector<float> grad;
    double max_rel = 0.0;
    int64_t n_checked = 0;
    for (int64_t c = 0; c < p.grad_check; ++c) {
        const size_t ti = (size_t) (c % (int64_t) a.tensors.size());
        const size_t ti_shuffled = (ti * 7919u + (size_t) (c / (int64_t) a.tensors.size())) % a.tensors.size();
        lora_tensor & t = a.tensors[ti_shuffled];
        trainer_read_grad(tg, ti_shuffled, grad);
        // the largest of a few random entries: tiny gradients drown in float32 rounding
        size_t idx = 0;
        for (int k = 0; k < 32; ++k) {
            const size_t cand = (size_t) (rng.next() % t.value.size());
            if (k == 0 || std::fabs(grad[cand]) > std::fabs(grad[idx])) {
                idx = cand;
            }
        }
        const float x0 = t.value[idx];
        const float h = p.grad_check_eps;
        double l[2];
        for (int s = 0; s < 2; ++s) {
            const float x = s == 0 ? x0 + h : x0 - h;
            ggml_backend_tensor_set(t.dev, &x, idx * sizeof(float), sizeof(float));
            l[s] = trainer_pass(tg, mb, false);
        }
        ggml_backend_tensor_set(t.dev, &x0, idx * sizeof(float), sizeof(float));
        const double numeric = (l[0] - l[1]) / (2.0 * (double) h);
        const double analytic = grad[idx];
        const double denom = std::max({ std::fabs(analytic), std::fabs(numeric), 1e-12 });
        const double rel = std::fabs(analytic - numeric) / denom;
        max_rel = std::max(max_rel, rel);
        n_checked++;
        json_line().str("event", "grad_check").str("tensor", t.name).integer("index", (int64_t) idx)
            .num("analytic", analytic).num("numeric", numeric).num("rel_error", rel).emit();
    }
    json_line().str("event", "grad_check_done").integer("n", n_checked).num("max_rel_error", max_rel).emit();
    return 0;
}

// The first step's loss and accumulated gradients, for tests that compare two ways of computing
// them: "AAGD", u32 n_tensors, f64 loss, then per tensor u32 n and n floats, in name order.
int write_grad_dump(const std::string & path, trainer_graph & tg, double loss) {
    write_atomically(path, [&](const std::string & tmp) {
        FILE * f = fopen(tmp.c_str(), "wb");
        if (!f) {
            throw runtime_failure("cannot write " + tmp);
        }
        const uint32_t n = (uint32_t) tg.adapter->tensors.size();
        fwrite("AAGD", 1, 4, f);
        fwrite(&n, sizeof(n), 1, f);
        fwrite(&loss, sizeof(loss), 1, f);
        std::vector<float> grad;
        for (size_t i = 0; i < n; ++i) {
            trainer_read_grad(tg, i, grad);
            const uint32_t k = (uint32_t) grad.size();
            fwrite(&k, sizeof(k), 1, f);
            fwrite(grad.data(), sizeof(float), grad.size(), f);
        }
        fclose(f);
    });
    json_line().str("event", "grad_dump").str("path", path).num("loss", loss).integer("repacked_weights", tg.wt.from_file)
        .integer("weight_file_bytes", tg.mapped.bytes).raw("dropout_masks", trainer_dropout_masks_json(tg)).emit();
    return 0;
}

int run(int argc, char ** argv) {
    train_params p;
    if (!train_params_parse(argc, argv, p)) {
        return 0;
    }
    g_verbose = p.verbose;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGHUP, on_signal); // a closed terminal or a lost ssh session: checkpoint too
#ifdef __linux__
    // a parent killed outright (SIGKILL) leaves no orphan training on: we get SIGTERM, checkpoint, exit
    prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
    llama_log_set(on_llama_log, nullptr);
    if (!g_verbose) {
        ggml_set_abort_callback(on_ggml_abort);
    }
    llama_backend_init();

    // ---- the base model's header: architecture, tensor shapes and types ----
    const base_info base = base_info_read(p.base);
    for (const auto & [name, type] : base.tensor_type) {
        // a BF16 weight's input gradient goes through the matmul kernels (patch 0002); upstream's
        // OUT_PROD has no BF16 kernel on the CPU
        if (type == GGML_TYPE_BF16 && name.rfind("blk.", 0) == 0 && p.frozen_backward == "out_prod") {
            throw input_error(p.base + ": tensor " + name + " is BF16, which --frozen-backward out_prod cannot backpropagate through on CPU; "
                    "use another --frozen-backward or an F32, F16 or quantized base");
        }
    }

    // ---- the adapter: resumed, given, or fresh ----
    const bool resuming = p.resume && file_exists(p.checkpoint);
    lora_adapter adapter;
    if (!p.adapter_in.empty()) {
        adapter = lora_read(p.adapter_in, base);
        take_adapter_shape(p, adapter);
    } else {
        adapter = lora_create(base, p.targets, p.rank, p.alpha, p.seed, p.grad_check > 0 ? 1.0f : 0.0f);
    }
    if (p.init_only) {
        lora_write(p.out, adapter, adapter_meta(p, base));
        json_line().str("event", "done").str("adapter", p.out).integer("steps", 0).integer("n_params", lora_n_params(adapter)).emit();
        return 0;
    }

    // ---- the base model ----
    llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers    = p.n_gpu_layers;
    // input gradients through the frozen weights: the fast matmul kernels, in 16 bits when mixed;
    // on the CPU through transposed copies made once (a GPU has no room for a second model)
    const bool on_gpu = p.n_gpu_layers != 0 && ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_GPU) != nullptr;
    const bool out_prod = p.frozen_backward == "out_prod"; // upstream's backward: F32
    const ggml_type grad_type = out_prod ? GGML_TYPE_F32 : frozen_grad_type(p, on_gpu);
    const bool forward_copies = p.mixed_precision == "on" && grad_type == GGML_TYPE_BF16;
    const uint64_t memory_available = p.memory_available_mib > 0 ? (uint64_t) p.memory_available_mib << 20 : available_memory_bytes();
    const uint64_t model_bytes = file_size(p.base); // the weights, repacked or mapped: held all along
    std::vector<trainer_graph::memory_plan> plans = memory_plans(p, base, on_gpu, grad_type, forward_copies, model_bytes, memory_available);
    const bool cached = plans.front().cached;
    // Only the copies read a weight otherwise, so the forward pass may take weights that llama.cpp
    // repacks for the CPU's own kernels (AMX tiles: 3x a Q8_0 forward pass where the CPU has them);
    // the copies of those are made from the file (pass.cpp), once or in each pass (from the file
    // mapped: a split model's other files are not, so its weights stay as they are).
    mparams.use_extra_bufts = cached || (!out_prod && !on_gpu && !base.split);
    llama_model * model = llama_model_load_from_file(p.base.c_str(), mparams);
    if (!model) {
        throw input_error(p.base + ": llama.cpp cannot load this model (rerun with --verbose for its log)");
    }
    const uint64_t resident_with_model = resident_bytes();
    const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));

    // ---- the data: validated before anything is trained ----
    const dataset ds = dataset_load(p.data, n_vocab, p.ctx, p.eval_fraction, p.seed);
    if (ds.n_skipped > 0) {
        fprintf(stderr, "autoact-train: skipped %lld samples without a response token\n", (long long) ds.n_skipped);
    }

    // ---- the run's shape ----
    // a step trains each sample at most once: with fewer samples than batch x grad-accum, a step
    // is the whole set (as a data loader's short batch), not copies that only cost time
    const int64_t n_train         = (int64_t) ds.train.size();
    const int64_t per_step        = std::max<int64_t>(1, std::min<int64_t>((int64_t) p.batch * p.grad_accum, n_train));
    const int64_t steps_per_epoch = (n_train + per_step - 1) / per_step;
    const int64_t total_steps     = p.steps > 0 ? p.steps : (int64_t) p.epochs * steps_per_epoch;
    std::vector<sample> every(ds.train);
    every.insert(every.end(), ds.eval.begin(), ds.eval.end());
    const pack_shape shape        = pack_plan(every, std::max<int64_t>(per_step, 1), p.ctx, p.batch_tokens);
    const int32_t capacity        = shape.tokens();

    checkpoint_state ckpt;
    ckpt.structure = run_structure(p, adapter, ds, total_steps);
    if (resuming) {
        adapter = checkpoint_load(p.checkpoint, base, ckpt.structure, ckpt);
        fprintf(stderr, "autoact-train: resuming from %s at step %lld\n", p.checkpoint.c_str(), (long long) ckpt.step);
    }

    // llama.cpp loads adapters from files: hand it the current values through a temporary one
    const std::string init_path = p.checkpoint + string_format(".init.%d.gguf", (int) getpid());
    lora_write(init_path, adapter, adapter_meta(p, base));
    llama_adapter_lora * lora = llama_adapter_lora_init(model, init_path.c_str());
    unlink(init_path.c_str());
    if (!lora) {
        throw runtime_failure("llama.cpp could not load the adapter it was given (rerun with --verbose)");
    }

    // one context whose single ubatch holds a packed micro-batch: every sample its own sequence
    // in one unified KV cache, so that the attention mask is block-diagonal; attention within
    // each of its blocks (pack.h)
    llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx           = (uint32_t) capacity;
    cparams.n_batch         = (uint32_t) capacity;
    cparams.n_ubatch        = (uint32_t) capacity;
    cparams.n_seq_max       = (uint32_t) pack_max_samples(capacity) + 1;
    // llama.cpp would size its compute buffer at creation for a graph whose every token is an output
    // (a 0.5B model's logits at 512 tokens: 311 MB); the passes copy no outputs out and the loss makes
    // its own logits a chunk at a time, so the training graphs size the buffer themselves
    cparams.n_outputs_max   = cparams.n_seq_max;
    cparams.kv_unified      = true;
    cparams.n_threads       = p.threads > 0 ? p.threads : (int32_t) std::max(1u, std::thread::hardware_concurrency());
    cparams.n_threads_batch = cparams.n_threads;
    cparams.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cparams.no_perf         = true;
    op_profile prof;
    cparams.cb_eval           = p.profile ? profile_eval : nullptr;
    cparams.cb_eval_user_data = &prof;
    // --n-gpu-layers 0 trains on the CPU alone: neither the KV cache nor large matmuls go to a GPU
    cparams.offload_kqv     = p.n_gpu_layers != 0;
    cparams.op_offload      = p.n_gpu_layers != 0;
    llama_context * lctx = llama_init_from_model(model, cparams);
    if (!lctx) {
        const bool memory = g_llama_errors.find("failed to allocate") != std::string::npos; // its own buffers
        throw runtime_failure(std::string(memory ? "out of memory: " : "") + "llama.cpp could not create a context of " + std::to_string(capacity) +
                " tokens" + (memory ? " (its buffers, in the log above); lower --batch-tokens or --ctx" : ""));
    }
    float scale = 1.0f;
    if (llama_set_adapters_lora(lctx, &lora, 1, &scale) != 0) {
        throw runtime_failure("llama.cpp could not attach the adapter");
    }
    llama_autoact_train_init(lctx);
    llama_autoact_set_attention_block(lctx, shape.block);


    // bind our tensors to the loaded adapter's
    {
        std::vector<ggml_tensor *> devs(adapter.tensors.size() + 1);
        const int32_t n = llama_autoact_adapter_tensors(lora, devs.data(), (int32_t) devs.size());
        if (n != (int32_t) adapter.tensors.size()) {
            throw runtime_failure("the loaded adapter has a different tensor count");
        }
        for (auto & t : adapter.tensors) {
            for (int32_t i = 0; i < n; ++i) {
                if (t.name == ggml_get_name(devs[i])) {
                    t.dev = devs[i];
                }
            }
            if (!t.dev) {
                throw runtime_failure("the loaded adapter lacks " + t.name);
            }
        }
    }
    trainer_graph tg;
    tg.reuse = !p.no_graph_reuse;
    tg.loss_gradient_forward = p.loss_gradient == "forward";
    const bool mixed  = grad_type != GGML_TYPE_F32;
    tg.base_file = p.base;
    trainer_frozen_backward(tg, out_prod ? -1 : grad_type, cached, !on_gpu, cparams.n_threads, p.backward_slice);
    // `on` with a CPU's native BF16: the forward matmuls through F32/F16 weights too (the loss then
    // differs from the model's own NLL by up to ~2e-2, so `auto` leaves the forward pass alone)
    tg.forward_copies = forward_copies;
    tg.recompute = plans.front().recompute;
    tg.recompute_layers = plans.front().layers;
    tg.n_layers = llama_model_n_layer(model);
    if (tg.recompute == trainer_graph::recompute_way::first_layers && tg.recompute_layers >= tg.n_layers) {
        tg.recompute = trainer_graph::recompute_way::all; // --recompute N of N >= L: every layer's
        for (auto & w : plans) {
            w.recompute = trainer_graph::recompute_way::all;
        }
    }
    tg.fallbacks.assign(plans.begin() + 1, plans.end());
    tg.memory_available   = memory_available;
    tg.memory_held        = model_bytes;
    tg.keep_dropout_masks = !p.grad_dump.empty(); // the dump reports them
    tg.dropout = p.grad_check > 0 ? 0.0f : p.lora_dropout; // finite differences need a fixed function
    trainer_graph_init(tg, lctx, adapter, n_vocab);

    if (p.grad_check > 0) {
        const int rc = run_grad_check(p, tg, ds, shape);
        trainer_graph_free(tg);
        llama_free(lctx);
        llama_model_free(model);
        return rc;
    }

    device_adamw opt;
    adamw_init(opt, adapter, { p.beta1, p.beta2, p.eps, p.weight_decay }, cparams.n_threads);
    adamw_upload(opt); // the moments of a resumed run (zeros otherwise)
    // held all along beside the model: what the process took since loading it (the KV cache, the
    // adapter with its gradients and moments, the data), 0.9 GiB for a 7B at 768 tokens
    const uint64_t resident_now = resident_bytes();
    tg.memory_held = model_bytes + (resident_now > resident_with_model ? resident_now - resident_with_model : 0);

    const int64_t n_params   = lora_n_params(adapter);
    const int64_t start_step = ckpt.step; // ckpt.step moves with each checkpoint

    json_line().str("event", "start").integer("n_train", n_train).integer("n_eval", (int64_t) ds.eval.size())
        .integer("n_skipped", ds.n_skipped).integer("n_params", n_params).integer("total_steps", total_steps)
        .integer("start_step", ckpt.step).integer("steps_per_epoch", steps_per_epoch).str("arch", base.arch)
        .integer("rank", adapter.rank).num("alpha", adapter.alpha).strings("targets", p.targets)
        .integer("threads", cparams.n_threads).integer("batch_tokens", capacity).integer("attention_block", shape.block)
        .integer("warmup_steps", warmup_steps(p, total_steps)).boolean("mixed_precision", mixed)
        .str("input_grad_type", ggml_type_name(grad_type)).str("frozen_backward", out_prod ? "out_prod" : cached ? "cached" : "matmul")
        .integer("memory_available_bytes", (int64_t) memory_available).integer("memory_held_bytes", (int64_t) tg.memory_held).boolean("forward_bf16", tg.forward_copies).boolean("recompute", tg.recompute != trainer_graph::recompute_way::none).emit();

    // one shape for every training micro-batch of the run: the most output rows any of them has
    auto step_samples = [&](int64_t step) {
        std::vector<const sample *> samples;
        for (int64_t k = (step - 1) * per_step; k < step * per_step; ++k) {
            samples.push_back(&ds.train[dataset_order((size_t) n_train, p.seed, k)]);
        }
        return samples;
    };
    int32_t train_outputs = 0;
    for (int64_t step = 1; step <= total_steps; ++step) {
        train_outputs = std::max(train_outputs, pack_max_labels(step_samples(step), shape));
    }

    const double t_start = now_s();
    int64_t tokens_here = 0;       // tokens trained by this process
    double  train_time_here = 0.0; // seconds spent in training steps by this process
    double  last_loss = ckpt.last_loss, last_eval = NAN, first_loss = ckpt.first_loss; // a resumed run's, from its checkpoint

    auto save_checkpoint = [&](int64_t step) {
        adamw_download(opt);
        ckpt.step       = step;
        ckpt.first_loss = first_loss;
        ckpt.last_loss  = last_loss;
        ckpt.elapsed_s  = ckpt.elapsed_s + train_time_here;
        ckpt.tokens     = ckpt.tokens + tokens_here;
        checkpoint_save(p.checkpoint, adapter, ckpt);
        ckpt.elapsed_s -= train_time_here; // keep the totals relative to this process's counters
        ckpt.tokens    -= tokens_here;
        json_line().str("event", "checkpoint").integer("step", step).str("path", p.checkpoint).emit();
    };
    auto stop_non_finite = [&](int64_t step, const std::string & what) {
        save_checkpoint(step - 1); // the device still holds the state before this step
        json_line().str("event", "error").str("kind", "nan").integer("step", step)
            .str("message", "non-finite " + what + "; the last good state is in the checkpoint").emit();
        // a run with another --lr cannot continue from the checkpoint (its result would be neither run's)
        throw runtime_failure(string_format("%s is not finite at step %lld: start over with a lower --lr (delete %s; it keeps the last good state, step %lld, to look at)",
                    what.c_str(), (long long) step, p.checkpoint.c_str(), (long long) (step - 1)), 3);
    };

    for (int64_t step = start_step + 1; step <= total_steps; ++step) {
        const double t_step = now_s();
        const double lr = lr_at(p, step, total_steps);

        // this step's samples, in the seeded order; each response token weighs 1/n of the step
        const std::vector<const sample *> samples = step_samples(step);
        int64_t n_trained = 0, tokens_step = 0;
        for (const sample * smp : samples) {
            n_trained += (int64_t) smp->labels.size();
            tokens_step += (int64_t) smp->tokens.size();
        }

        // forward + backward of each packed micro-batch; the step loss is the mean over its trained tokens
        double loss = 0.0;
        const std::vector<micro_batch> mbs = pack_samples(samples, shape, (float) (1.0 / (double) n_trained), train_outputs);
        for (size_t i = 0; i < mbs.size(); ++i) {
            tg.dropout_seed = pass_seed(p.seed, step, i);
            prof.active = p.profile && step > start_step + 1; // the first step allocates and warms up
            if (prof.active) {
                profile_pass_begin(prof);
            }
            const double l = trainer_pass(tg, mbs[i], true);
            prof.active = false;
            if (!std::isfinite(l)) {
                stop_non_finite(step, "loss");
            }
            loss += l;
            if (g_interrupted) {
                break;
            }
        }
        if (g_interrupted) {
            // the step is incomplete: keep the state of the last complete one
            trainer_grads_zero(tg);
            save_checkpoint(step - 1);
            json_line().str("event", "interrupted").integer("step", step - 1).str("checkpoint", p.checkpoint).emit();
            return 130;
        }
        if (!p.grad_dump.empty()) {
            return write_grad_dump(p.grad_dump, tg, loss);
        }

        // global gradient norm, clipping, AdamW on the device
        const double gnorm = adamw_grad_norm(opt);
        if (!std::isfinite(gnorm)) {
            stop_non_finite(step, "gradient");
        }
        const float gscale = p.grad_clip > 0.0f && gnorm > p.grad_clip ? (float) (p.grad_clip / gnorm) : 1.0f;
        adamw_step(opt, lr, step, gscale);
        trainer_grads_zero(tg);

        tokens_here += tokens_step;
        train_time_here += now_s() - t_step;
        last_loss = loss;
        if (step == 1) {
            first_loss = loss;
        }

        const bool eval_now = !ds.eval.empty() && ((p.eval_every > 0 && step % p.eval_every == 0) || step == total_steps);
        if (eval_now) {
            last_eval = eval_loss(tg, ds.eval, shape);
        }
        const double tps = train_time_here > 0 ? (double) tokens_here / train_time_here : 0.0;
        const double eta = (double) (total_steps - step) * (train_time_here / (double) (step - start_step));
        json_line line;
        line.str("event", "step").integer("step", step).num("epoch", (double) (step * per_step) / (double) n_train)
            .num("loss", loss);
        if (eval_now) {
            line.num("eval_loss", last_eval);
        } else {
            line.null("eval_loss");
        }
        line.num("lr", lr).num("grad_norm", gnorm).integer("tokens", tokens_step).num("tokens_per_s", tps)
            .num("elapsed_s", ckpt.elapsed_s + (now_s() - t_start)).num("eta_s", eta)
            .integer("peak_rss_bytes", (int64_t) peak_rss_bytes()).integer("graph_builds", tg.n_builds).emit();

        if (p.checkpoint_every > 0 && step % p.checkpoint_every == 0 && step < total_steps) {
            save_checkpoint(step);
        }
        if (g_interrupted) {
            save_checkpoint(step);
            json_line().str("event", "interrupted").integer("step", step).str("checkpoint", p.checkpoint).emit();
            return 130;
        }
    }

    // ---- the result ----
    if (!ds.eval.empty() && !std::isfinite(last_eval)) {
        last_eval = eval_loss(tg, ds.eval, shape);
    }
    save_checkpoint(total_steps); // also brings the device's values to the host
    lora_write(p.out, adapter, adapter_meta(p, base));
    if (p.profile) {
        profile_report(prof, 30);
    }
    // the scheduler's compute buffers (activations and temporaries of the largest graph), per backend
    json_line buffers;
    {
        const char * names[16];
        size_t bytes[16];
        const int32_t n = std::min<int32_t>(16, llama_autoact_compute_buffers(lctx, names, bytes, 16));
        for (int32_t i = 0; i < n; ++i) {
            buffers.integer(names[i], (int64_t) bytes[i]);
        }
    }
    const double train_s = ckpt.elapsed_s + train_time_here;
    json_line().str("event", "done").str("adapter", p.out).integer("steps", total_steps)
        .num("first_loss", first_loss).num("loss", last_loss).num("eval_loss", last_eval)
        .num("tokens_per_s", train_time_here > 0 ? tokens_here / train_time_here : 0.0)
        .num("train_s", train_s).integer("tokens", ckpt.tokens + tokens_here)
        .integer("peak_rss_bytes", (int64_t) peak_rss_bytes()).integer("n_params", n_params)
        .integer("graph_builds", tg.n_builds).integer("passes", tg.n_passes).integer("weight_copy_bytes", tg.wt.bytes)
        .integer("repacked_weights", tg.wt.from_file).integer("weight_file_bytes", tg.mapped.bytes)
        .integer("train_graph_nodes", tg.train_graph_nodes).str("frozen_backward", out_prod ? "out_prod" : tg.cached ? "cached" : "matmul")
        .boolean("recompute", tg.recompute != trainer_graph::recompute_way::none).integer("recomputed_layers", recomputed_layers(tg))
        .raw("compute_buffer_bytes", buffers.text()).emit();

    adamw_free(opt);
    trainer_graph_free(tg);
    llama_free(lctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}

} // namespace

int main(int argc, char ** argv) {
    try {
        return run(argc, argv);
    } catch (const input_error & e) {
        json_line().str("event", "error").str("kind", "input").str("message", e.what()).emit();
        fprintf(stderr, "autoact-train: %s\n", e.what());
        return 2;
    } catch (const runtime_failure & e) {
        if (e.exit_code != 3) {
            json_line().str("event", "error").str("kind", "runtime").str("message", e.what()).emit();
        }
        fprintf(stderr, "%sautoact-train: %s\n", g_llama_errors.c_str(), e.what());
        return e.exit_code;
    } catch (const std::exception & e) {
        json_line().str("event", "error").str("kind", "runtime").str("message", e.what()).emit();
        fprintf(stderr, "%sautoact-train: %s\n", g_llama_errors.c_str(), e.what());
        return 1;
    }
}
