#include "pass.h"
#include "common.h"

#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "llama.h"

#include <cmath>
#include <map>

namespace {

struct pass_state {
    trainer_graph * tg = nullptr;
    const sample *  smp = nullptr;
    bool            backward = false;
    float           weight = 1.0f;

    ggml_context *  meta = nullptr;
    ggml_cgraph *   graph = nullptr;
    ggml_tensor *   labels = nullptr;
    ggml_tensor *   loss = nullptr;
    std::vector<float> labels_host;
};

ggml_cgraph * pass_build(void * ud, ggml_cgraph * gf, ggml_tensor * logits) {
    auto * ps = static_cast<pass_state *>(ud);
    const size_t size = ggml_graph_size(gf);
    ggml_init_params params = {
        /*mem_size   =*/ 4 * size * ggml_tensor_overhead() + 2 * ggml_graph_overhead_custom(size, true),
        /*mem_buffer =*/ nullptr,
        /*no_alloc   =*/ true,
    };
    ps->meta = ggml_init(params);

    // logits: [n_vocab, n_outputs], one column per trained position, in order
    GGML_ASSERT(logits && logits->ne[1] == (int64_t) ps->smp->labels.size());
    ps->graph  = ggml_graph_dup(ps->meta, gf, /*force_grads =*/ ps->backward);
    ps->labels = ggml_new_tensor_2d(ps->meta, GGML_TYPE_F32, logits->ne[0], logits->ne[1]);
    ggml_set_name(ps->labels, "autoact_labels");
    ggml_set_input(ps->labels);
    ps->loss = ggml_cross_entropy_loss(ps->meta, logits, ps->labels); // mean over the columns
    ggml_set_name(ps->loss, "autoact_loss");
    ggml_set_output(ps->loss);
    ggml_build_forward_expand(ps->graph, ps->loss);
    if (!ps->backward) {
        return ps->graph;
    }
    ggml_set_loss(ps->loss);

    // the adapter's gradients land in our accumulators (indexed by forward node)
    std::map<const ggml_tensor *, ggml_tensor *> acc_of;
    for (auto & t : ps->tg->adapter->tensors) {
        acc_of[t.dev] = t.grad;
    }
    const int n_nodes = ggml_graph_n_nodes(ps->graph);
    std::vector<ggml_tensor *> accs(n_nodes, nullptr);
    size_t n_found = 0;
    for (int i = 0; i < n_nodes; ++i) {
        const auto it = acc_of.find(ggml_graph_node(ps->graph, i));
        if (it != acc_of.end()) {
            accs[i] = it->second;
            n_found++;
        }
    }
    if (n_found != acc_of.size()) {
        fprintf(stderr, "autoact-train: only %zu of %zu adapter tensors are in the graph\n", n_found, acc_of.size());
        return nullptr;
    }
    ggml_build_backward_expand(ps->meta, ps->graph, accs.data());
    return ps->graph;
}

void pass_set_inputs(void * ud) {
    auto * ps = static_cast<pass_state *>(ud);
    const int64_t n_vocab = ps->labels->ne[0];
    ps->labels_host.assign((size_t) ggml_nelements(ps->labels), 0.0f);
    for (size_t r = 0; r < ps->smp->labels.size(); ++r) {
        ps->labels_host[r * n_vocab + ps->smp->labels[r]] = 1.0f;
    }
    ggml_backend_tensor_set(ps->labels, ps->labels_host.data(), 0, ggml_nbytes(ps->labels));
    if (ps->backward) {
        // the seed gradient d(step loss)/d(sample loss): the sample's share of the step's tokens
        ggml_tensor * seed = ggml_graph_get_grad_acc(ps->graph, ps->loss);
        ggml_backend_tensor_set(seed, &ps->weight, 0, sizeof(float));
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

void trainer_graph_free(trainer_graph & tg) {
    if (tg.grad_buf) {
        ggml_backend_buffer_free(tg.grad_buf);
        tg.grad_buf = nullptr;
    }
}

void trainer_grads_zero(trainer_graph & tg) {
    ggml_backend_buffer_clear(tg.grad_buf, 0);
}

double trainer_pass(trainer_graph & tg, const sample & smp, bool backward, float weight) {
    pass_state ps;
    ps.tg = &tg;
    ps.smp = &smp;
    ps.backward = backward;
    ps.weight = weight;

    llama_autoact_pass pass = { pass_build, pass_set_inputs, &ps };
    const int32_t rc = llama_autoact_pass_run(tg.lctx, smp.tokens.data(), smp.outputs.data(), (int32_t) smp.tokens.size(), pass);
    double loss = NAN;
    if (rc == 0) {
        float l = 0.0f;
        ggml_backend_tensor_get(ps.loss, &l, 0, sizeof(float));
        loss = l;
    }
    if (ps.meta) {
        ggml_free(ps.meta);
    }
    if (rc != 0) {
        throw runtime_failure(string_format("llama.cpp failed on sample %d (code %d; rerun with --verbose)", smp.index, rc));
    }
    return loss;
}

void trainer_upload(trainer_graph & tg) {
    for (auto & t : tg.adapter->tensors) {
        ggml_backend_tensor_set(t.dev, t.value.data(), 0, ggml_nbytes(t.dev));
    }
}

void trainer_read_grad(trainer_graph & tg, size_t i, std::vector<float> & out) {
    const lora_tensor & t = tg.adapter->tensors[i];
    out.resize((size_t) ggml_nelements(t.grad));
    ggml_backend_tensor_get(t.grad, out.data(), 0, ggml_nbytes(t.grad));
}
