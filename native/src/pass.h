// One pass of a packed micro-batch through the base model with the adapter attached: llama.cpp's
// forward graph (patched, see native/patches), our masked loss from integer labels and, for
// training, the backward pass whose adapter gradients add into the accumulators. The graph is
// built once per shape (tokens, outputs, backward) and computed again for every micro-batch of
// that shape; only the loss comes back to the host.
#pragma once

#include "adapter.h"
#include "pack.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

struct llama_context;
struct ggml_backend_buffer;
struct ggml_context;
struct ggml_cgraph;
struct ggml_tensor;
struct gguf_context;

struct trainer_graph {
    llama_context *       lctx = nullptr;
    lora_adapter *        adapter = nullptr;
    int32_t               n_vocab = 0;
    bool                  reuse = true;     // false: build a fresh graph for every pass (tests)
    float                 dropout = 0.0f;   // LoRA dropout of training passes
    float                 dropout_seed = 0; // the next training pass's mask seed (see pass_seed)
    ggml_backend_buffer * grad_buf = nullptr; // the gradient accumulators
    int64_t               slice_elements = 0; // see trainer_frozen_backward
    bool                  sliced = false;     // large frozen weights' input gradients are made a slice at a time
    // Training graphs' activations: kept, the first `recompute_layers` layers' recomputed in the
    // backward pass (memory for the later layers' only; time for that share of one more forward
    // pass), or every layer's (recompute.h)
    enum class recompute_way { none, first_layers, all };
    recompute_way         recompute = recompute_way::none;
    int                   recompute_layers = 0; // with first_layers
    int                   n_layers = 0;
    bool                  loss_gradient_forward = true; // false: the whole loss through ggml's backward pass (tests)
    bool                  forward_copies = false; // training passes' forward matmuls through F32/F16 weights on copies in wt.type
    bool                  keep_dropout_masks = false; // the masks stay readable after a pass (trainer_dropout_masks_json)
    bool                  cached = false; // the frozen weights' transposed copies made once (else in each pass)
    // How a training pass may hold its memory: copies made once or in each pass, activations kept
    // or recomputed. `fallbacks`: after the way in use, the others the options leave (--frozen-backward
    // auto, --recompute auto on a CPU), the fastest first. A training graph whose compute buffers
    // would not fit in memory_available beside memory_held (the model and the process's own state:
    // KV cache, adapter, gradients, moments, data) and the weight copies, or
    // the file's pages the copies made in each pass read, is built again the next way (pass_fits).
    // A way that recomputes the first layers takes the count given (`layers`, --recompute N) or,
    // with 0, as many as the declined graphs' measures say fit, none where that is all of them.
    struct memory_plan { bool cached; recompute_way recompute; int layers = 0; };
    std::vector<memory_plan> fallbacks;
    uint64_t              memory_available = 0; // bytes; 0: unknown
    uint64_t              memory_held = 0;
    // the last training graphs declined, for each copies' way ([cached]), one with every activation
    // kept and one with the first layers' recomputed: its micro-batch's tokens, the count of layers
    // recomputed, its compute buffers and the room it had beside the rest
    struct graph_measure { int32_t n_tokens = 0; int layers = 0; uint64_t compute = 0, room = 0; };
    graph_measure         kept[2], first_layers[2];
    memory_plan           next = {};           // the way pass_fits chose after the graph it declined

    // the graph of the last pass, kept while the next pass has the same shape
    struct {
        int32_t        n_tokens = 0, n_outputs = 0;
        bool           backward = false;
        ggml_context * meta = nullptr;
        ggml_cgraph *  graph = nullptr;
        ggml_tensor *  labels = nullptr;  // I32 [O]: each row's label as a flat index into its chunk's targets
        int32_t        rows_per_chunk = 1; // output rows of a chunk of the loss
        ggml_tensor *  row_mask = nullptr;   // F32 [1, O]: 1 for a trained row, 0 for padding
        ggml_tensor *  loss_weight = nullptr; // F32 [1]: the rows' weight
        ggml_tensor *  loss = nullptr;    // F32 [1]: sum of weight * NLL
        ggml_tensor *  objective_grad = nullptr; // F32 [1]: the seed of the backward pass (set to 1)
        ggml_tensor *  dropout_seed = nullptr; // F32 [1], when the graph has dropout
    } last;
    std::string build_error; // why the last graph could not be built, when it was our limit
    int64_t n_builds = 0, n_passes = 0;
    int64_t train_graph_nodes = 0; // nodes of the last training graph (one kernel launch each on a GPU)

    // copies of the frozen weights in host memory, made once: transposed for their input gradients
    // (trainer_frozen_backward with `cache`), and as they are for the forward matmuls (forward_copies).
    // A weight llama.cpp repacked for the CPU's own kernels (AMX tiles, interleaved blocks) is not
    // in its file layout: its copy is made from the bytes in `base_file`, the base GGUF.
    std::string base_file;
    struct {
        int            type = 0;        // ggml_type of the copies
        int            n_threads = 1;
        ggml_context * ctx = nullptr;
        std::map<const ggml_tensor *, ggml_tensor *> of;         // transposed, for input gradients
        std::map<const ggml_tensor *, ggml_tensor *> forward_of; // as they are, for the forward pass
        struct copy { const ggml_tensor * w; ggml_tensor * copy; bool transposed; };
        std::vector<copy> pending;
        std::vector<ggml_backend_buffer *> buffers;
        int64_t        bytes = 0;
        int64_t        from_file = 0; // weights llama.cpp repacked, their copies made from base_file
    } wt;

    // per pass (no `cache`): base_file mapped read-only, so that a repacked weight's copy in each
    // pass reads the file's bytes (page cache, read again in every pass: pass_fits counts it)
    struct {
        void *                addr = nullptr;
        size_t                size = 0;
        gguf_context *        gguf = nullptr;
        ggml_context *        ctx = nullptr;
        ggml_backend_buffer * buf = nullptr;
        std::map<const ggml_tensor *, ggml_tensor *> of;
        int64_t               bytes = 0; // of the weights read from it: pages each pass reads again
    } mapped;
};

// Input gradients through the frozen weights: matmuls of transposed copies in `type` (F32, or
// F16 / BF16 with mixed precision), the copies made once and kept (`cache`, CPU) or made in every
// pass (GPU: no memory for a second copy of the model; a CPU short of memory: a repacked weight's
// from the mapped base file); or upstream's OUT_PROD (`type` < 0). In a pass, a weight of more
// than 2 x `slice_elements` is transposed a slice of rows at a time. `on_cpu`: the passes run on
// the CPU, whose own op makes a copy in one step (dequantized, transposed and converted a tile at
// a time).
void trainer_frozen_backward(trainer_graph & tg, int type, bool cache, bool on_cpu, int n_threads, int64_t slice_elements);
// What the copies made in each pass cost, as the notices that choose them say it (measured on a
// 7B and a 100M: 0.85-0.89x on an Intel Xeon with AMX, 0.95-1x on an AMD EPYC).
constexpr const char * k_copies_in_each_pass_cost = "--frozen-backward matmul: about 0.85-1x the speed";
// The ways' time against copies made once with every activation kept, as measured on a 7B Q4_K
// (an Intel Xeon: copies in each pass 0.89x the speed, every layer recomputed 0.71x; an AMD EPYC:
// 0.95x and 0.73x): recomputing n of the L layers costs n/L of the latter. The plan takes the
// fastest way that fits.
constexpr double k_copies_in_each_pass_time = 1.12, k_recompute_all_time = 0.4;
// The frozen weights' transposed copies made once (`cache`) or in each pass from now on: copies
// made so far and the mapped file are dropped where the way changes.
void trainer_weight_copies(trainer_graph & tg, bool cache);

// Marks the adapter's tensors trainable and allocates one gradient accumulator per tensor,
// beside it (same buffer type).
void trainer_graph_init(trainer_graph & tg, llama_context * lctx, lora_adapter & adapter, int32_t n_vocab);
void trainer_graph_free(trainer_graph & tg);

void trainer_grads_zero(trainer_graph & tg);

// The dropout seed of a training pass: a function of the run's seed, the step and the micro-batch,
// so that a resumed run draws the masks a straight run would.
float pass_seed(uint64_t seed, int64_t step, size_t micro_batch);

// Sum over the micro-batch's output rows of weight * NLL of the row's label. With `backward`,
// its gradient is added to the accumulators. Throws runtime_failure when llama.cpp fails.
double trainer_pass(trainer_graph & tg, const micro_batch & mb, bool backward);

// Copies the host values of the adapter into its backend tensors.
void trainer_upload(trainer_graph & tg);

// The dropout keep-masks of the last training pass (needs keep_dropout_masks), as a JSON array of
// {"n": elements, "kept": share of ones, "neighbours_equal": share of equal neighbours}: p's
// complement and p^2 + (1-p)^2 for independent draws. For tests.
std::string trainer_dropout_masks_json(trainer_graph & tg);

// Reads the accumulated gradient of tensor i into `out`.
void trainer_read_grad(trainer_graph & tg, size_t i, std::vector<float> & out);
