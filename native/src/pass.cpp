#include "pass.h"
#include "common.h"
#include "recompute.h"

#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml-autoact.h"
#include "gguf.h"
#include "llama.h"

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cstdio>
#include <cstring>
#include <cmath>
#include <map>
#include <new>
#include <optional>
#include <unordered_set>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

struct pass_call {
    trainer_graph *     tg = nullptr;
    const micro_batch * mb = nullptr;
    bool                backward = false;
};

// The loss on top of llama.cpp's forward graph, from integer labels, a chunk of output rows at a
// time (as many as keep a chunk's logits within two slices of --backward-slice: the output layer's
// slices, dequantized beside a chunk's softmax for its gradient, are half its size):
//   p_k    = softmax(logits_k)                      [V, n]  (in place of the logits)
//   loss   = -weight * sum_k sum_o mask_o log p_k[label_o, o]   (each row's label probability
//            picked out of p_k with get_rows at the row's flat index: no one-hot target tensor)
// mask is 1 for a trained row and 0 for a padding row; weight is 1 / (response tokens of the step):
// the step's loss is the mean NLL of its response tokens, however the samples were packed.
//
// The gradient is computed in the forward pass, chunk by chunk, so that no V x O tensor lives
// until the backward pass (a 0.5B model's logits, softmax and targets at 512 rows: 0.93 GB):
//   G_k = weight * mask * W^T (p_k - onehot_k)     [E, n], into rows of a leaf G
// (p_k - onehot_k: 1 off each row's label probability, in place, with set_rows) and the backward
// pass starts from objective = sum(h * G), whose gradient in h, the final hidden state, is G: the
// loss's gradient exactly. G is a leaf written by copies, so the backward pass does not
// differentiate through its computation. This needs logits = mul_mat(W, h) with W frozen; a model
// that scales or caps its logits after the matmul keeps the whole loss (ggml's fused
// cross-entropy against one-hot targets set on the device) and ggml's backward.
// (Picking each row's label logit with get_rows has a backward, GET_ROWS_BACK, that CUDA computes
// by scanning every label for each of the V x O entries: most of a GPU training step. Here the
// picking is in the forward pass only.)
struct loss_graph {
    ggml_tensor * loss      = nullptr; // the reported loss, F32 [1]
    ggml_tensor * objective = nullptr; // what the backward pass starts from (with `backward`)
};

// Whether the loss can make its own logits and compute its gradient in the forward pass.
bool plain_logits(const trainer_graph & tg, const ggml_tensor * logits) {
    if (!tg.loss_gradient_forward) {
        return false;
    }
    const ggml_tensor * w = logits->src[0];
    const ggml_tensor * h = logits->src[1];
    return logits->op == GGML_OP_MUL_MAT && w->op == GGML_OP_NONE && !(w->flags & GGML_TENSOR_FLAG_PARAM) &&
        ggml_is_matrix(w) && ggml_is_matrix(h) && h->type == GGML_TYPE_F32;
}

loss_graph build_loss(trainer_graph & tg, ggml_context * ctx, ggml_cgraph * graph, ggml_tensor * logits, bool backward) {
    const int64_t n_vocab = logits->ne[0], n_out = logits->ne[1];
    ggml_tensor * w = logits->src[0];
    ggml_tensor * h = logits->src[1];
    const bool plain = plain_logits(tg, logits);
    int64_t per = plain ? std::max<int64_t>(1, std::min<int64_t>(n_out, 2 * tg.slice_elements / n_vocab)) : n_out;
    if (plain) {
        // each chunk's gradient takes the output weight a slice at a time (~7 nodes a slice): at most
        // an eighth of the graph's room for the loss, in fewer, larger chunks when the slices are many
        const int64_t per_slice = ggml_autoact_frozen_grad_slice_rows(w);
        const int64_t n_slices  = (w->ne[1] + per_slice - 1) / per_slice;
        const int64_t max_chunks = std::max<int64_t>(1, (int64_t) ggml_graph_size(graph) / 8 / (7 * n_slices + 16));
        per = std::max(per, (n_out + max_chunks - 1) / max_chunks);
    }
    if (per * n_vocab >= INT32_MAX) { // get_rows and set_rows index a chunk's [V, n] with 32 bits
        tg.build_error = string_format("%lld output rows x %lld vocabulary entries in one chunk of the loss exceed its 32-bit index: "
                "lower --batch-tokens", (long long) per, (long long) n_vocab);
        return {};
    }
    tg.last.rows_per_chunk = (int32_t) per;

    tg.last.labels = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n_out);
    ggml_set_name(tg.last.labels, "autoact_labels");
    ggml_set_input(tg.last.labels);
    tg.last.row_mask = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 1, n_out);
    ggml_set_name(tg.last.row_mask, "autoact_row_mask");
    ggml_set_input(tg.last.row_mask);
    tg.last.loss_weight = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 1);
    ggml_set_name(tg.last.loss_weight, "autoact_loss_weight");
    ggml_set_input(tg.last.loss_weight);

    const bool gradient_here = backward && plain;
    const bool loss_differentiated = backward && !plain; // ggml's backward runs through the whole loss
    ggml_tensor * g_all = nullptr;
    if (gradient_here) {
        g_all = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, h->ne[0], n_out);
        ggml_set_name(g_all, "autoact_loss_grad");
    }
    ggml_tensor * sum = nullptr;
    for (int64_t o0 = 0; o0 < n_out; o0 += per) {
        const int64_t n = std::min(per, n_out - o0);
        ggml_tensor * logits_k = plain
            ? ggml_mul_mat(ctx, w, ggml_view_2d(ctx, h, h->ne[0], n, h->nb[1], o0 * h->nb[1]))
            : logits;
        ggml_tensor * mask_k   = ggml_view_2d(ctx, tg.last.row_mask, 1, n, tg.last.row_mask->nb[1], o0 * tg.last.row_mask->nb[1]);
        ggml_tensor * labels_k = ggml_view_1d(ctx, tg.last.labels, n, o0 * ggml_element_size(tg.last.labels));
        ggml_tensor * ce = nullptr;
        if (loss_differentiated) {
            // ggml's backward runs through the whole loss: its fused cross-entropy against the
            // one-hot targets, set on the device into zeros (a padding row's are all 0), and the
            // padding rows' logits masked, or their softmax would flow back
            ggml_tensor * zeros = ggml_fill_inplace(ctx, ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n_vocab, n), 0.0f);
            ggml_tensor * hot   = ggml_reshape_2d(ctx, ggml_set_rows(ctx, ggml_reshape_2d(ctx, zeros, 1, n_vocab * n), mask_k, labels_k), n_vocab, n);
            ce = ggml_scale(ctx, ggml_cross_entropy_loss(ctx, ggml_mul(ctx, logits_k, mask_k), hot), (float) n);
        } else {
            // the softmax in place of the logits, each row's label probability picked out of it:
            // no second V x n tensor. A probability below F32's smallest normal counts as that
            // (a row's loss at most 87.3: only the reported loss, never the gradient below)
            ggml_tensor * probs   = ggml_reshape_2d(ctx, ggml_soft_max(ctx, logits_k), 1, n_vocab * n);
            ggml_tensor * p_label = ggml_get_rows(ctx, probs, labels_k); // [1, n]
            ce = ggml_scale(ctx, ggml_sum(ctx, ggml_mul(ctx, ggml_log(ctx, ggml_clamp(ctx, p_label, FLT_MIN, 1.0f)), mask_k)), -1.0f);
            if (gradient_here) {
                // softmax - targets: 1 off each trained row's label probability, in place; the
                // padding rows masked in the gradient (E wide, not V)
                ggml_tensor * d = ggml_reshape_2d(ctx, ggml_set_rows(ctx, probs, ggml_sub(ctx, p_label, mask_k), labels_k), n_vocab, n);
                ggml_build_forward_expand(graph, d); // now, in place of the logits: not beside the output layer's first slice
                ggml_tensor * g = ggml_mul(ctx, ggml_mul(ctx, ggml_autoact_frozen_input_grad(ctx, w, d), mask_k), tg.last.loss_weight);
                ggml_build_forward_expand(graph, ggml_cpy(ctx, g, ggml_view_2d(ctx, g_all, g_all->ne[0], n, g_all->nb[1], o0 * g_all->nb[1])));
            }
        }
        sum = sum ? ggml_add(ctx, sum, ce) : ce;
        ggml_build_forward_expand(graph, sum); // this chunk's loss now, and its gradient: its logits are freed before the next chunk's
    }
    loss_graph out;
    out.loss = ggml_mul(ctx, sum, tg.last.loss_weight);
    ggml_set_name(out.loss, "autoact_loss");
    ggml_set_output(out.loss);
    ggml_build_forward_expand(graph, out.loss);
    if (backward) {
        out.objective = gradient_here ? ggml_sum(ctx, ggml_mul(ctx, h, g_all)) : out.loss;
        ggml_set_name(out.objective, "autoact_objective");
        ggml_set_loss(out.objective);
        ggml_build_forward_expand(graph, out.objective);
    }
    return out;
}

// A frozen weight of the base model (the adapter's tensors are trainable).
bool is_model_weight(const ggml_tensor * w) {
    return w->data && w->buffer && ggml_backend_buffer_get_usage(w->buffer) == GGML_BACKEND_BUFFER_USAGE_WEIGHTS &&
        !(w->flags & GGML_TENSOR_FLAG_PARAM);
}

// A copy of a frozen model weight in the copies' type, transposed (its input gradient) or not (the
// forward pass's matmuls), made once: created here, allocated at the end of the build
// (allocate_weight_copies) and computed before the first pass (compute_weight_copies).
ggml_tensor * weight_copy(trainer_graph & tg, const ggml_tensor * w, bool transposed) {
    auto & wt = tg.wt;
    if (!wt.ctx) {
        ggml_init_params params = { 4096 * ggml_tensor_overhead(), nullptr, true };
        wt.ctx = ggml_init(params);
    }
    auto & of = transposed ? wt.of : wt.forward_of;
    const auto it = of.find(w);
    if (it != of.end()) {
        return it->second;
    }
    ggml_tensor * t = transposed ? ggml_new_tensor_4d(wt.ctx, (ggml_type) wt.type, w->ne[1], w->ne[0], w->ne[2], w->ne[3])
                                 : ggml_new_tensor_4d(wt.ctx, (ggml_type) wt.type, w->ne[0], w->ne[1], w->ne[2], w->ne[3]);
    ggml_format_name(t, transposed ? "autoact_wt.%s" : "autoact_w16.%s", w->name);
    of[w] = t;
    wt.pending.push_back({ w, t, transposed });
    return t;
}

// Where the base file stores weight w as llama.cpp loaded it (the same type and size), or false:
// the one test of both ways a repacked weight's copy reads the file (once, or in each pass).
bool offset_in_file(const gguf_context * g, const ggml_tensor * w, size_t & at) {
    const int64_t id = gguf_find_tensor(g, w->name);
    if (id < 0 || gguf_get_tensor_type(g, id) != w->type || gguf_get_tensor_size(g, id) != ggml_nbytes(w)) {
        return false;
    }
    at = gguf_get_data_offset(g) + gguf_get_tensor_offset(g, id);
    return true;
}

std::string not_in_file(const std::string & path, const ggml_tensor * w, const char * instead) {
    return string_format("%s: %s is not in this file as loaded (a split model?): rerun with --frozen-backward %s", path.c_str(), w->name, instead);
}

// Maps tg.base_file read-only and reads its tensor index, once; false where it cannot. (Called
// from ggml's backward pass, which is C: nothing may throw through it.)
bool map_base_file(trainer_graph & tg) {
    auto & m = tg.mapped;
    const int fd = open(tg.base_file.c_str(), O_RDONLY);
    struct stat st {};
    void * addr = fd >= 0 && fstat(fd, &st) == 0 ? mmap(nullptr, (size_t) st.st_size, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    if (fd >= 0) {
        close(fd); // the mapping keeps the file
    }
    if (addr == MAP_FAILED) {
        return false;
    }
    gguf_init_params params = { /*no_alloc =*/ true, /*ctx =*/ nullptr };
    m.gguf = gguf_init_from_file(tg.base_file.c_str(), params);
    if (!m.gguf) {
        munmap(addr, (size_t) st.st_size);
        return false;
    }
    m.addr = addr;
    m.size = (size_t) st.st_size;
    ggml_init_params ctx_params = { 4096 * ggml_tensor_overhead(), nullptr, true };
    m.ctx = ggml_init(ctx_params);
    m.buf = ggml_backend_cpu_buffer_from_ptr(m.addr, m.size);
    ggml_backend_buffer_set_usage(m.buf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    return true;
}

// ggml asks for a frozen weight in its file layout while it builds the backward pass (per pass):
// for one llama.cpp repacked for the CPU's own kernels, the same tensor in the mapped base file.
// A weight not in that file (a split model's) is an error the build reports, never a misread.
ggml_tensor * plain_source(const ggml_tensor * w, void * ud) {
    auto & tg = *static_cast<trainer_graph *>(ud);
    if (!is_model_weight(w) || ggml_backend_buffer_is_host(w->buffer)) {
        return nullptr; // readable as it is
    }
    auto & m = tg.mapped;
    const auto it = m.of.find(w);
    if (it != m.of.end()) {
        return it->second;
    }
    if (!m.addr && !map_base_file(tg)) {
        tg.build_error = tg.base_file + ": cannot map the base model again to read its weights (rerun with --frozen-backward cached)";
        return nullptr;
    }
    size_t at = 0;
    if (!offset_in_file(m.gguf, w, at) || at + ggml_nbytes(w) > m.size) {
        tg.build_error = not_in_file(tg.base_file, w, "out_prod");
        return nullptr;
    }
    ggml_tensor * t = ggml_new_tensor(m.ctx, w->type, GGML_MAX_DIMS, w->ne);
    ggml_format_name(t, "autoact_file.%s", w->name);
    ggml_backend_tensor_alloc(m.buf, t, (char *) m.addr + at);
    m.of[w] = t;
    m.bytes += (int64_t) ggml_nbytes(w);
    tg.wt.from_file++;
    return t;
}

// ggml asks for the transposed copy of a frozen weight while it builds the backward pass.
ggml_tensor * transposed_source(const ggml_tensor * w, void * ud) {
    if (!is_model_weight(w)) {
        return nullptr; // not a model weight: ggml makes the copy in the pass
    }
    return weight_copy(*static_cast<trainer_graph *>(ud), w, true);
}

// Mixed precision on a CPU that multiplies BF16 natively: the training graph's matmuls through
// frozen F32 and F16 weights read BF16 copies made once, at BF16's rate (quantized weights have
// their own integer kernels).
void forward_in_copies(trainer_graph & tg, ggml_cgraph * graph) {
    for (int i = 0; i < ggml_graph_n_nodes(graph); ++i) {
        ggml_tensor * t = ggml_graph_node(graph, i);
        ggml_tensor * w = t->src[0];
        if (t->op == GGML_OP_MUL_MAT && is_model_weight(w) && !w->view_src && (w->type == GGML_TYPE_F32 || w->type == GGML_TYPE_F16)) {
            t->src[0] = weight_copy(tg, w, false);
        }
    }
}

// The bytes of a weight as its file stores them, for one that llama.cpp repacked on loading.
class base_file_reader {
  public:
    explicit base_file_reader(const std::string & path) : path_(path) {}
    ~base_file_reader() {
        if (gguf_) {
            gguf_free(gguf_);
        }
        if (file_) {
            std::fclose(file_);
        }
    }

    void read(const ggml_tensor * w, std::vector<uint8_t> & out) {
        if (!gguf_) {
            gguf_init_params params = { /*no_alloc =*/ true, /*ctx =*/ nullptr };
            gguf_ = gguf_init_from_file(path_.c_str(), params);
            file_ = std::fopen(path_.c_str(), "rb");
            if (!gguf_ || !file_) {
                throw runtime_failure(path_ + ": cannot read the base model's weights again (rerun with --frozen-backward matmul)");
            }
        }
        size_t at = 0;
        if (!offset_in_file(gguf_, w, at)) {
            throw runtime_failure(not_in_file(path_, w, "matmul"));
        }
        out.resize(ggml_nbytes(w));
        if (fseeko(file_, (off_t) at, SEEK_SET) != 0 || std::fread(out.data(), 1, out.size(), file_) != out.size()) {
            throw runtime_failure(string_format("%s: cannot read %s", path_.c_str(), w->name));
        }
    }

  private:
    std::string    path_;
    gguf_context * gguf_ = nullptr;
    std::FILE *    file_ = nullptr;
};

// Allocates the new weight copies in host memory, as the graph that reads them is built: a
// buffer not yet written takes no memory, and pass_fits counts it with the graph.
void allocate_weight_copies(trainer_graph & tg) {
    auto & wt = tg.wt;
    if (wt.pending.empty() || wt.pending.back().copy->buffer) {
        return;
    }
    ggml_backend_buffer * buf = ggml_backend_alloc_ctx_tensors_from_buft(wt.ctx, ggml_backend_cpu_buffer_type());
    if (!buf) {
        throw runtime_failure("cannot allocate the transposed weights (rerun with --frozen-backward matmul)");
    }
    wt.buffers.push_back(buf);
    wt.bytes += (int64_t) ggml_backend_buffer_get_size(buf);
}

// Computes the allocated copies once, before the first pass that reads them, a weight at a time (a
// repacked weight's file bytes are read for it alone: one weight in memory twice at most).
void compute_weight_copies(trainer_graph & tg) {
    auto & wt = tg.wt;
    if (wt.pending.empty()) {
        return;
    }
    ggml_backend * cpu = ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_CPU, nullptr);
    ggml_backend_cpu_set_n_threads(cpu, wt.n_threads);
    ggml_gallocr * alloc = ggml_gallocr_new(ggml_backend_cpu_buffer_type());
    base_file_reader file(tg.base_file);
    std::vector<uint8_t> bytes;
    bool ok = true;
    for (auto & c : wt.pending) {
        ggml_init_params params = { 8 * ggml_tensor_overhead() + ggml_graph_overhead_custom(8, false), nullptr, true };
        ggml_context * ctx = ggml_init(params);
        ggml_cgraph * g = ggml_new_graph_custom(ctx, 8, false);
        ggml_tensor * src = const_cast<ggml_tensor *>(c.w);
        if (!ggml_backend_buffer_is_host(src->buffer)) {
            file.read(src, bytes);
            wt.from_file++;
            src = ggml_new_tensor(ctx, c.w->type, GGML_MAX_DIMS, c.w->ne);
            src->data = bytes.data(); // host memory the allocator leaves alone
        }
        if (c.transposed && ggml_is_matrix(src)) {
            // the CPU's own op, as the copies made in each pass make theirs: its result is the copy
            ggml_tensor * copy = ggml_custom_4d(ctx, c.copy->type, c.copy->ne[0], c.copy->ne[1], 1, 1, &src, 1,
                    ggml_autoact_cpu_transposed_copy, GGML_N_TASKS_MAX, nullptr);
            copy->data = c.copy->data; // allocated: the allocator leaves it alone
            ggml_build_forward_expand(g, copy);
        } else {
            if (ggml_is_quantized(src->type)) {
                src = ggml_cast(ctx, src, GGML_TYPE_F32);
            }
            ggml_build_forward_expand(g, ggml_cpy(ctx, c.transposed ? ggml_transpose(ctx, src) : src, c.copy));
        }
        ok = ok && ggml_gallocr_alloc_graph(alloc, g) && ggml_backend_graph_compute(cpu, g) == GGML_STATUS_SUCCESS;
        ggml_free(ctx);
    }
    ggml_gallocr_free(alloc);
    ggml_backend_free(cpu);
    wt.pending.clear();
    if (!ok) {
        throw runtime_failure("cannot compute the transposed weights");
    }
}

// A dropout keep-mask as patch 0003 names it (made in place: itself a view of the tensor it was
// made in), not a window of it ("... (view)") nor a recomputed copy ("... (re)").
bool is_dropout_mask(const ggml_tensor * t) {
    return std::strncmp(t->name, "autoact_dropout_keep_", 21) == 0 && !std::strchr(t->name, ' ');
}

// The slices beyond the first of the frozen weights' input gradients (ggml_autoact_frozen_grad_slice_rows).
int64_t extra_slices(ggml_cgraph * gf) {
    std::unordered_set<const ggml_tensor *> weights;
    int64_t extra = 0;
    for (int i = 0; i < ggml_graph_n_nodes(gf); ++i) {
        const ggml_tensor * node = ggml_graph_node(gf, i);
        const ggml_tensor * w = node->src[0];
        if (node->op == GGML_OP_MUL_MAT && w->op == GGML_OP_NONE && ggml_is_matrix(w) && weights.insert(w).second) {
            const int64_t per = ggml_autoact_frozen_grad_slice_rows(w);
            extra += (w->ne[1] + per - 1) / per - 1;
        }
    }
    return extra;
}

// The graph's nodes and the leaves they read.
size_t graph_tensors(ggml_cgraph * graph) {
    std::unordered_set<const ggml_tensor *> seen;
    const int n_nodes = ggml_graph_n_nodes(graph);
    for (int i = 0; i < n_nodes; ++i) {
        seen.insert(ggml_graph_node(graph, i));
    }
    for (int i = 0; i < n_nodes; ++i) {
        for (const ggml_tensor * src : ggml_graph_node(graph, i)->src) {
            if (src) {
                seen.insert(src);
            }
        }
    }
    return seen.size();
}

ggml_cgraph * pass_build(void * ud, ggml_cgraph * gf, ggml_tensor * logits) {
    auto & call = *static_cast<pass_call *>(ud);
    trainer_graph & tg = *call.tg;
    if (tg.last.meta) {
        ggml_free(tg.last.meta); // llama.cpp has reset the forward graph the old one extended
    }
    tg.last = {};
    tg.build_error.clear();
    tg.n_builds++;

    // the scheduler takes graphs of as many tensors as llama.cpp's own has room for; ours are built
    // with twice that, so that an oversized one gets a message instead of an abort
    const size_t room = ggml_graph_size(gf);
    const size_t size = 2 * room;
    const int64_t n_slices = tg.sliced ? extra_slices(gf) : 0;
    if (10 * n_slices > (int64_t) room) { // ~10 nodes a slice
        tg.build_error = string_format("--backward-slice %lld cuts this model's weights into %lld more slices than the training graph has room for "
                "(about %zu): raise it", (long long) tg.slice_elements, (long long) n_slices, room / 10);
        return nullptr;
    }
    ggml_init_params params = {
        /*mem_size   =*/ 3 * size * ggml_tensor_overhead() + 3 * ggml_graph_overhead_custom(size, true),
        /*mem_buffer =*/ nullptr,
        /*no_alloc   =*/ true,
    };
    tg.last.meta = ggml_init(params);

    GGML_ASSERT(logits && logits->ne[1] == (int64_t) call.mb->labels.size());
    // with plain logits the loss makes its own, a chunk at a time: the graph is the model's without
    // its logits (but with the rest: the KV cache stores read inputs too); otherwise the whole graph
    ggml_cgraph * graph = ggml_new_graph_custom(tg.last.meta, size, /*grads =*/ call.backward);
    const bool own_logits = plain_logits(tg, logits);
    for (int i = 0; i < ggml_graph_n_nodes(gf); ++i) {
        if (!own_logits || ggml_graph_node(gf, i) != logits) {
            graph_append(graph, ggml_graph_node(gf, i));
        }
    }
    const loss_graph loss = build_loss(tg, tg.last.meta, graph, logits, call.backward);
    if (!loss.loss) {
        return nullptr; // tg.build_error says why
    }
    tg.last.loss = loss.loss;
    if (call.backward) {
        // the adapter's gradients land in our accumulators (indexed by forward node)
        std::map<const ggml_tensor *, ggml_tensor *> acc_of;
        for (auto & t : tg.adapter->tensors) {
            acc_of[t.dev] = t.grad;
        }
        const int n_nodes = ggml_graph_n_nodes(graph);
        std::vector<ggml_tensor *> accs(n_nodes, nullptr);
        size_t n_found = 0;
        for (int i = 0; i < n_nodes; ++i) {
            const auto it = acc_of.find(ggml_graph_node(graph, i));
            if (it != acc_of.end()) {
                accs[i] = it->second;
                n_found++;
            }
        }
        if (n_found != acc_of.size()) {
            fprintf(stderr, "autoact-train: only %zu of %zu adapter tensors are in the graph\n", n_found, acc_of.size());
            return nullptr;
        }
        const int n_forward = ggml_graph_n_nodes(graph);
        ggml_build_backward_expand(tg.last.meta, graph, accs.data());
        if (!tg.build_error.empty()) {
            return nullptr; // a source of a frozen weight failed (plain_source)
        }
        tg.last.objective_grad = ggml_graph_get_grad_acc(graph, loss.objective);
        if (tg.recompute != trainer_graph::recompute_way::none) {
            graph = recompute_activations(tg.last.meta, graph, n_forward,
                    tg.recompute == trainer_graph::recompute_way::all ? -1 : tg.recompute_layers);
            if (!graph) {
                tg.build_error = "the training graph with recomputed activations has more nodes than it has room for: rerun with --recompute off";
                return nullptr;
            }
        }
        if (tg.forward_copies) {
            forward_in_copies(tg, graph);
        }
        allocate_weight_copies(tg);
        tg.train_graph_nodes = ggml_graph_n_nodes(graph);
    }
    const size_t n_tensors = graph_tensors(graph);
    if (n_tensors > room) {
        tg.build_error = string_format("the training graph has %zu tensors, more than llama.cpp's scheduler takes (%zu): raise --backward-slice or "
                "lower --batch-tokens", n_tensors, room);
        return nullptr;
    }
    if (tg.keep_dropout_masks) {
        for (int i = 0; i < ggml_graph_n_nodes(graph); ++i) {
            ggml_tensor * t = ggml_graph_node(graph, i);
            // not reused by later nodes: readable after the pass (the mask is made in place: its
            // memory is the tensor it views)
            for (ggml_tensor * m = is_dropout_mask(t) ? t : nullptr; m; m = m->view_src) {
                ggml_set_output(m);
            }
        }
    }
    tg.last.dropout_seed = ggml_graph_get_tensor(graph, "autoact_dropout_seed");
    tg.last.graph     = graph;
    tg.last.n_tokens  = (int32_t) call.mb->tokens.size();
    tg.last.n_outputs = (int32_t) call.mb->labels.size();
    tg.last.backward  = call.backward;
    return graph;
}

void pass_set_inputs(void * ud) {
    auto & call = *static_cast<pass_call *>(ud);
    trainer_graph & tg = *call.tg;
    const micro_batch & mb = *call.mb;
    compute_weight_copies(tg); // the graph fitted and is allocated: the copies it reads, once
    // each label as a flat index into its chunk's [V, n] probabilities (or targets)
    std::vector<int32_t> flat(mb.labels.size());
    for (size_t o = 0; o < mb.labels.size(); ++o) {
        flat[o] = (int32_t) ((o % (size_t) tg.last.rows_per_chunk) * (size_t) tg.n_vocab) + mb.labels[o];
    }
    ggml_backend_tensor_set(tg.last.labels, flat.data(), 0, ggml_nbytes(tg.last.labels));
    // the rows' common weight (1 / the step's response tokens)
    std::vector<float> mask(mb.weights.size());
    float weight = 0.0f;
    for (size_t o = 0; o < mb.weights.size(); ++o) {
        mask[o] = mb.weights[o] > 0.0f ? 1.0f : 0.0f;
        if (mb.weights[o] > 0.0f && weight > 0.0f && mb.weights[o] != weight) {
            throw runtime_failure("the output rows of a micro-batch have different loss weights");
        }
        weight = mb.weights[o] > 0.0f ? mb.weights[o] : weight;
    }
    ggml_backend_tensor_set(tg.last.row_mask, mask.data(), 0, ggml_nbytes(tg.last.row_mask));
    ggml_backend_tensor_set(tg.last.loss_weight, &weight, 0, sizeof(float));
    if (tg.last.dropout_seed) {
        ggml_backend_tensor_set(tg.last.dropout_seed, &tg.dropout_seed, 0, sizeof(float));
    }
    if (call.backward) {
        // the seed gradient: the loss already carries each row's share of the step
        const float one = 1.0f;
        ggml_backend_tensor_set(tg.last.objective_grad, &one, 0, sizeof(float));
    }
}

} // namespace

void trainer_graph_init(trainer_graph & tg, llama_context * lctx, lora_adapter & adapter, int32_t n_vocab) {
    tg.lctx = lctx;
    tg.adapter = &adapter;
    tg.n_vocab = n_vocab;

    ggml_init_params params = { (adapter.tensors.size() + 1) * ggml_tensor_overhead(), nullptr, true };
    ggml_context * ctx = ggml_init(params); // lives as long as the process: the accumulators' metadata
    ggml_backend_buffer_type_t buft = nullptr;
    for (auto & t : adapter.tensors) {
        GGML_ASSERT(t.dev && t.dev->type == GGML_TYPE_F32);
        ggml_set_param(t.dev);
        t.grad = ggml_new_tensor(ctx, GGML_TYPE_F32, GGML_MAX_DIMS, t.dev->ne);
        ggml_format_name(t.grad, "grad_acc.%s", t.name.c_str());
        buft = ggml_backend_buffer_get_type(t.dev->buffer);
    }
    tg.grad_buf = ggml_backend_alloc_ctx_tensors_from_buft(ctx, buft);
    if (!tg.grad_buf) {
        throw runtime_failure("cannot allocate the gradient accumulators");
    }
    trainer_grads_zero(tg);
}

void trainer_frozen_backward(trainer_graph & tg, int type, bool cache, bool on_cpu, int n_threads, int64_t slice_elements) {
    ggml_autoact_set_frozen_grad_slice(slice_elements);
    ggml_autoact_set_frozen_grad_copy_op(on_cpu && type >= 0 ? ggml_autoact_cpu_transposed_copy : nullptr);
    tg.slice_elements = slice_elements;
    if (type < 0) {
        tg.sliced = tg.cached = false;
        ggml_autoact_set_frozen_grad_type(GGML_TYPE_COUNT, nullptr, nullptr);
        return;
    }
    tg.wt.type = type;
    tg.wt.n_threads = n_threads;
    trainer_weight_copies(tg, cache);
}

namespace {

// The copies made so far (once) and the base file mapped for the copies made in each pass.
void drop_weight_copies(trainer_graph & tg) {
    if (tg.mapped.addr) {
        ggml_backend_buffer_free(tg.mapped.buf);
        ggml_free(tg.mapped.ctx);
        gguf_free(tg.mapped.gguf);
        munmap(tg.mapped.addr, tg.mapped.size);
    }
    tg.mapped = {};
    for (ggml_backend_buffer * b : tg.wt.buffers) {
        ggml_backend_buffer_free(b);
    }
    if (tg.wt.ctx) {
        ggml_free(tg.wt.ctx);
    }
    const int type = tg.wt.type, n_threads = tg.wt.n_threads;
    tg.wt = {};
    tg.wt.type = type;
    tg.wt.n_threads = n_threads;
}

} // namespace

void trainer_weight_copies(trainer_graph & tg, bool cache) {
    drop_weight_copies(tg);
    tg.cached = cache;
    tg.sliced = !cache;
    ggml_autoact_set_frozen_grad_type((ggml_type) tg.wt.type, cache ? transposed_source : nullptr, &tg);
    ggml_autoact_set_frozen_grad_plain_source(cache ? nullptr : plain_source, &tg);
}

void trainer_graph_free(trainer_graph & tg) {
    ggml_autoact_set_frozen_grad_type(GGML_TYPE_COUNT, nullptr, nullptr);
    ggml_autoact_set_frozen_grad_plain_source(nullptr, nullptr);
    ggml_autoact_set_frozen_grad_copy_op(nullptr);
    drop_weight_copies(tg);
    tg.wt = {};
    if (tg.last.meta) {
        ggml_free(tg.last.meta);
        tg.last = {};
    }
    if (tg.grad_buf) {
        ggml_backend_buffer_free(tg.grad_buf);
        tg.grad_buf = nullptr;
    }
}

void trainer_grads_zero(trainer_graph & tg) {
    ggml_backend_buffer_clear(tg.grad_buf, 0);
}

// A step's time the way `w`, against the copies made once with every activation kept.
double step_time(const trainer_graph & tg, const trainer_graph::memory_plan & w) {
    using way = trainer_graph::recompute_way;
    const double recomputed = w.recompute == way::all ? 1.0 : w.recompute == way::first_layers ? (double) w.layers / tg.n_layers : 0.0;
    return (w.cached ? 1.0 : k_copies_in_each_pass_time) + k_recompute_all_time * recomputed;
}

// How many first layers' activations a graph of `n_tokens` under the copies' way `cached` should
// recompute, by the measures of the graphs declined: with every activation kept alone, each
// layer's share of it taken alike, one more for the layer recomputed at a time; with a count of
// first layers declined too, the saving per layer that those two graphs measured (a graph's
// buffers beside the layers' activations make the first estimate short). 0: not measured for this
// micro-batch, or every layer (which is measured as it is).
int first_layers_count(const trainer_graph & tg, bool cached, int32_t n_tokens) {
    const trainer_graph::graph_measure & kept = tg.kept[cached];
    if (kept.n_tokens != n_tokens || kept.compute <= kept.room) {
        return 0;
    }
    const trainer_graph::graph_measure & some = tg.first_layers[cached];
    double n = std::ceil(tg.n_layers * (double) (kept.compute - kept.room) / (double) kept.compute) + 1;
    if (some.n_tokens == n_tokens && some.layers > 0) {
        if (some.compute >= kept.compute) {
            return 0; // recomputing those layers saved nothing
        }
        const double per_layer = (double) (kept.compute - some.compute) / some.layers;
        n = std::max(std::ceil((double) (kept.compute - std::min(some.room, kept.compute)) / per_layer), some.layers + 1.0);
    }
    return n < tg.n_layers ? (int) n : 0;
}

// The way after a training graph declined (`compute_bytes` beside `room`): of the fallbacks, the
// fastest by step_time (the first of equals). A way recomputing as many first layers as fit takes
// the count of first_layers_count; it stays among the fallbacks, so that a count declined too is
// followed by a larger one, until that count would be every layer. None where no way is left.
std::optional<trainer_graph::memory_plan> next_memory_plan(trainer_graph & tg, int32_t n_tokens, uint64_t compute_bytes, uint64_t room) {
    using way = trainer_graph::recompute_way;
    if (tg.recompute == way::none) {
        tg.kept[tg.cached] = { n_tokens, 0, compute_bytes, room };
    } else if (tg.recompute == way::first_layers) {
        tg.first_layers[tg.cached] = { n_tokens, tg.recompute_layers, compute_bytes, room };
    }
    const auto as_many_as_fit = [](const trainer_graph::memory_plan & w) { return w.recompute == way::first_layers && w.layers == 0; };
    std::vector<trainer_graph::memory_plan> ways;
    for (trainer_graph::memory_plan w : tg.fallbacks) {
        if (as_many_as_fit(w) && (w.layers = first_layers_count(tg, w.cached, n_tokens)) == 0) {
            continue;
        }
        ways.push_back(w);
    }
    if (ways.empty()) {
        tg.fallbacks.clear(); // only first layers' ways passed over
        return std::nullopt;
    }
    const auto fastest = std::min_element(ways.begin(), ways.end(), [&](const auto & a, const auto & b) { return step_time(tg, a) < step_time(tg, b); });
    const trainer_graph::memory_plan next = *fastest;
    // the fallbacks less the one taken, but for a count of first layers to be measured
    tg.fallbacks.erase(std::remove_if(tg.fallbacks.begin(), tg.fallbacks.end(), [&](const auto & w) {
        return w.cached == next.cached && w.recompute == next.recompute && !as_many_as_fit(w); }), tg.fallbacks.end());
    return next;
}

// A newly built graph, measured before it is allocated (the copies made once are allocated but
// not yet written): a training graph whose compute buffers would not fit beside the model and the
// weight copies is declined while another way remains (trainer_pass then builds it the way chosen
// here). Copies made in each pass from the mapped file count its pages: every pass reads them
// again, so they stay in memory beside the repacked weights (a 7B Q4_K: 3.5 GiB twice).
bool pass_fits(void * ud, size_t compute_bytes) {
    const pass_call & call = *static_cast<pass_call *>(ud);
    trainer_graph & tg = *call.tg;
    const uint64_t held = tg.memory_held + (uint64_t) tg.wt.bytes + (uint64_t) tg.mapped.bytes;
    if (held + compute_bytes <= tg.memory_available) {
        return true;
    }
    const uint64_t room = tg.memory_available > held ? tg.memory_available - held : 0;
    const std::optional<trainer_graph::memory_plan> way = next_memory_plan(tg, (int32_t) call.mb->tokens.size(), compute_bytes, room);
    if (!way) {
        return true; // no other way: allocated as it is, where the memory decides
    }
    const trainer_graph::memory_plan next = *way;
    tg.next = next;
    std::string instead;
    if (next.recompute == tg.recompute && next.layers == tg.recompute_layers) {
        instead = next.cached ? "the frozen weights' copies are made once instead"
                              : std::string("the frozen weights' copies are made in each pass instead (") + k_copies_in_each_pass_cost + ")";
    } else {
        instead = next.recompute == trainer_graph::recompute_way::first_layers
            ? string_format("the activations of the first %d of the %d layers are recomputed in the backward pass instead (about %.0f%% of "
                  "one more forward pass of time)", next.layers, tg.n_layers, 100.0 * next.layers / tg.n_layers)
            : "each layer's activations are recomputed in the backward pass instead (--recompute on: about one more forward pass of time)";
        if (next.cached != tg.cached) {
            instead += next.cached ? ", with the frozen weights' copies made once" : ", with the frozen weights' copies made in each pass";
        }
    }
    json_line().str("event", "notice").str("message", string_format(
        "a training pass's activations (%.2f GiB) with the model and the weight copies or the file pages they are made from (%.2f GiB) "
        "would not fit in the %.2f GiB of memory available: %s", compute_bytes / 1073741824.0, held / 1073741824.0,
        tg.memory_available / 1073741824.0, instead.c_str())).emit();
    return false;
}

double trainer_pass(trainer_graph & tg, const micro_batch & mb, bool backward) {
    // dropout only in training passes; it changes the graph, as `backward` does
    llama_autoact_set_lora_dropout(tg.lctx, backward ? tg.dropout : 0.0f);
    pass_call call;
    call.tg = &tg;
    call.mb = &mb;
    call.backward = backward;

    const bool same_shape = tg.reuse && tg.last.graph && tg.last.backward == backward &&
        tg.last.n_tokens == (int32_t) mb.tokens.size() && tg.last.n_outputs == (int32_t) mb.labels.size();
    // measured before allocation only where a training graph could be declined (an extra
    // measure of each build otherwise)
    const bool may_decline = backward && !tg.fallbacks.empty() && tg.memory_available > 0;
    llama_autoact_pass pass = { pass_build, pass_set_inputs, &call, same_shape ? tg.last.graph : nullptr, may_decline ? pass_fits : nullptr };
    const llama_autoact_batch batch = { mb.tokens.data(), mb.pos.data(), mb.seq.data(), mb.outputs.data(), (int32_t) mb.tokens.size() };
    int32_t rc = 0;
    bool host_memory = false; // the CPU backend allocates its work buffer with new[] when it computes
    try {
        rc = llama_autoact_pass_run(tg.lctx, batch, &pass);
    } catch (const std::bad_alloc &) {
        host_memory = true;
    }
    if (rc != 0 && !tg.build_error.empty()) {
        throw input_error(tg.build_error);
    }
    if (rc == LLAMA_AUTOACT_PASS_DECLINED) { // pass_fits chose the next way and said why
        const trainer_graph::memory_plan next = tg.next;
        tg.last.graph = nullptr; // built, never allocated: not to be reused
        if (next.cached != tg.cached) {
            trainer_weight_copies(tg, next.cached);
        }
        tg.recompute = next.recompute;
        tg.recompute_layers = next.layers;
        return trainer_pass(tg, mb, backward);
    }
    if (rc == LLAMA_AUTOACT_PASS_ALLOC_FAILED || host_memory) {
        throw runtime_failure(string_format("out of memory: the %s graph of a %zu-token micro-batch does not fit (%s); lower --batch-tokens%s",
                backward ? "training" : "forward", mb.tokens.size(), host_memory ? "its work buffer in host memory" : "its size is in the log above",
                tg.recompute == trainer_graph::recompute_way::all ? "" : " or use --recompute on"));
    }
    if (rc != 0) {
        throw runtime_failure(string_format("llama.cpp failed on a micro-batch of %d samples (code %d; rerun with --verbose)", mb.n_samples, rc));
    }
    tg.n_passes++;
    float l = 0.0f;
    ggml_backend_tensor_get(tg.last.loss, &l, 0, sizeof(float));
    return l;
}

float pass_seed(uint64_t seed, int64_t step, size_t micro_batch) {
    rng64 rng(seed ^ ((uint64_t) step * 0x9e3779b97f4a7c15ull) ^ ((uint64_t) micro_batch << 48));
    return (float) (rng.next() % 8191); // small: patch 0003 takes frac(0.5698 * seed) in F32
}

void trainer_upload(trainer_graph & tg) {
    for (auto & t : tg.adapter->tensors) {
        ggml_backend_tensor_set(t.dev, t.value.data(), 0, ggml_nbytes(t.dev));
    }
}

std::string trainer_dropout_masks_json(trainer_graph & tg) {
    std::string out;
    for (int i = 0; tg.last.graph && i < ggml_graph_n_nodes(tg.last.graph); ++i) {
        ggml_tensor * t = ggml_graph_node(tg.last.graph, i);
        if (!is_dropout_mask(t)) {
            continue;
        }
        std::vector<float> v((size_t) ggml_nelements(t));
        ggml_backend_tensor_get(t, v.data(), 0, ggml_nbytes(t));
        double kept = 0.0, equal = 0.0;
        for (size_t k = 0; k < v.size(); ++k) {
            kept += v[k];
            equal += k > 0 && v[k] == v[k - 1];
        }
        out += string_format("%s{\"n\":%zu,\"kept\":%.6f,\"neighbours_equal\":%.6f}", out.empty() ? "" : ",", v.size(),
                kept / (double) v.size(), equal / (double) (v.size() - 1));
    }
    return "[" + out + "]";
}

void trainer_read_grad(trainer_graph & tg, size_t i, std::vector<float> & out) {
    const lora_tensor & t = tg.adapter->tensors[i];
    out.resize((size_t) ggml_nelements(t.grad));
    ggml_backend_tensor_get(t.grad, out.data(), 0, ggml_nbytes(t.grad));
}
