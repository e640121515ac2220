// One pass of a sample through the base model with the adapter attached: the forward graph
// from llama.cpp (patched, see native/patches), our loss on the trained positions, and, for
// training, the backward pass whose adapter gradients add into the accumulators.
#pragma once

#include "adapter.h"
#include "dataset.h"

struct llama_context;
struct ggml_backend_buffer;

struct trainer_graph {
    llama_context *       lctx = nullptr;
    lora_adapter *        adapter = nullptr;
    int32_t               n_vocab = 0;
    ggml_backend_buffer * grad_buf = nullptr; // the gradient accumulators
};

// Marks the adapter's tensors trainable and allocates one gradient accumulator per tensor,
// beside it (same buffer type).
void trainer_graph_init(trainer_graph & tg, llama_context * lctx, lora_adapter & adapter, int32_t n_vocab);
void trainer_graph_free(trainer_graph & tg);

void trainer_grads_zero(trainer_graph & tg);

// Mean cross-entropy over the sample's trained positions. With `backward`, the gradient of
// weight * loss is added to the accumulators. Throws runtime_failure when llama.cpp fails.
double trainer_pass(trainer_graph & tg, const sample & smp, bool backward, float weight);

// Copies the host values of the adapter into its backend tensors.
void trainer_upload(trainer_graph & tg);

// Reads the accumulated gradient of tensor i into `out`.
void trainer_read_grad(trainer_graph & tg, size_t i, std::vector<float> & out);
