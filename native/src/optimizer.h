// AdamW on the device that holds the adapter: the moments live beside the parameters, and a
// step moves only a handful of floats between host and device (the learning rate and bias
// corrections in, the gradient norm out). Two small graphs, each built once: the global
// gradient norm, then clipping + ggml's AdamW step over every adapter tensor.
#pragma once

#include "adapter.h"

#include <vector>

struct ggml_backend;
struct ggml_backend_buffer;
struct ggml_backend_sched;
struct ggml_context;
struct ggml_cgraph;
struct ggml_tensor;

struct adamw_settings {
    float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
};

struct device_adamw {
    lora_adapter *              adapter = nullptr;
    adamw_settings              settings;
    ggml_context *              ctx = nullptr;      // moments, step inputs, both graphs
    std::vector<ggml_context *> moment_ctxs;        // the moments' metadata, one per buffer type
    std::vector<ggml_backend_buffer *> buffers;      // the moments' memory, likewise
    ggml_backend_buffer *       host_buf = nullptr; // the step's inputs
    std::vector<ggml_backend *> backends;
    ggml_backend_sched *        sched = nullptr;
    std::vector<ggml_tensor *>  m, v;               // per adapter tensor
    ggml_tensor *               params = nullptr;   // [7] lr, beta1, beta2, eps, wd, 1/(1-beta1^t), 1/(1-beta2^t)
    ggml_tensor *               gscale = nullptr;   // [1] clipping factor
    ggml_tensor *               norm2 = nullptr;    // [1] squared global gradient norm
    ggml_cgraph *               g_norm = nullptr;
    ggml_cgraph *               g_step = nullptr;
};

// Allocates the moments beside each adapter tensor and builds both graphs.
void adamw_init(device_adamw & opt, lora_adapter & adapter, const adamw_settings & settings, int n_threads);
void adamw_free(device_adamw & opt);

// The global L2 norm of the accumulated gradients.
double adamw_grad_norm(device_adamw & opt);

// One AdamW step (1-based `step`) with gradients scaled by `gscale` (clipping).
void adamw_step(device_adamw & opt, double lr, int64_t step, float gscale);

// Host <-> device copies of the parameters and moments (checkpoints, resume, the final adapter).
void adamw_download(device_adamw & opt);
void adamw_upload(device_adamw & opt);
