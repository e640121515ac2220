#include "recompute.h"

#include "ggml.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace {

struct recomputer {
    ggml_context *                                    ctx;
    std::unordered_set<const ggml_tensor *>           forward;     // computed nodes of the forward pass
    std::unordered_map<const ggml_tensor *, ggml_tensor *> kept;    // checkpoint (a layer's output) -> its copy in a leaf
    std::unordered_map<const ggml_tensor *, ggml_tensor *> copies;  // forward node -> its recomputed copy

    // The tensor that the backward pass reads in place of `t`: `t` itself when it is not a forward
    // node or a node without sources (it costs nothing to keep: a constant such as an arange); a
    // checkpoint's kept copy; otherwise a copy of its op on recomputed sources (made once).
    ggml_tensor * get(ggml_tensor * t) {
        if (const auto k = kept.find(t); k != kept.end()) {
            return k->second;
        }
        if (!t || !forward.count(t) || (t->flags & GGML_TENSOR_FLAG_PARAM)) {
            return t;
        }
        bool has_src = false;
        for (ggml_tensor * s : t->src) {
            has_src = has_src || s != nullptr;
        }
        if (!has_src) {
            return t;
        }
        const auto it = copies.find(t);
        if (it != copies.end()) {
            return it->second;
        }
        ggml_tensor * c = ggml_new_tensor(ctx, t->type, GGML_MAX_DIMS, t->ne);
        copies[t] = c;
        c->op    = t->op;
        c->flags = t->flags & ~GGML_TENSOR_FLAG_OUTPUT;
        std::memcpy(c->op_params, t->op_params, sizeof(t->op_params));
        std::memcpy(c->nb, t->nb, sizeof(t->nb)); // views and permutations keep their strides
        for (int k = 0; k < GGML_MAX_SRC; ++k) {
            c->src[k] = get(t->src[k]);
        }
        if (t->view_src) { // a view (or an in-place op) of a recomputed tensor views the copy
            c->view_src  = get(t->view_src);
            c->view_offs = t->view_offs;
        }
        ggml_format_name(c, "%.56s (re)", ggml_get_name(t));
        return c;
    }
};

} // namespace

ggml_cgraph * recompute_activations(ggml_context * ctx, ggml_cgraph * graph, int n_forward, int n_layers) {
    recomputer r{ ctx, {}, {}, {} };
    for (int i = 0; i < n_forward; ++i) {
        ggml_tensor * t = ggml_graph_node(graph, i);
        r.forward.insert(t);
        // a layer's output is kept, copied into a new tensor of its own, a graph leaf: ggml's
        // allocator places the leaves before the first node, side by side, so that the kept
        // outputs do not stand between the layers' large temporaries (each would push the next
        // layer's attention scores above it: 1.8 MB a layer at 512 tokens, 7.3 MB at 2048)
        if (std::strncmp(ggml_get_name(t), "l_out-", 6) == 0) {
            ggml_tensor * leaf = ggml_new_tensor(ctx, t->type, GGML_MAX_DIMS, t->ne);
            ggml_format_name(leaf, "%.56s (kept)", ggml_get_name(t));
            r.kept[t] = ggml_cpy(ctx, t, leaf);
            if ((int) r.kept.size() == n_layers) {
                break; // the later layers' activations are the forward pass's own
            }
        }
    }
    if (r.kept.empty()) {
        static bool warned = false;
        if (!warned) {
            fprintf(stderr, "autoact-train: this architecture's graph names no layer outputs (l_out-<layer>): activations are kept, not recomputed\n");
            warned = true;
        }
        return graph;
    }

    // the backward pass reads the copies
    const int n_nodes = ggml_graph_n_nodes(graph);
    for (int i = n_forward; i < n_nodes; ++i) {
        ggml_tensor * t = ggml_graph_node(graph, i);
        for (int k = 0; k < GGML_MAX_SRC; ++k) {
            t->src[k] = r.get(t->src[k]);
        }
        if (t->view_src) {
            t->view_src = r.get(t->view_src);
        }
    }

    // the same order, each copy placed just before the first backward node that reads it
    const int size = (int) ggml_graph_size(graph);
    if (n_nodes + (int) (r.copies.size() + r.kept.size()) > size) {
        return nullptr; // more nodes than the graph has room for
    }
    ggml_cgraph * out = ggml_new_graph_custom(ctx, size, false);
    for (int i = 0; i < n_nodes; ++i) {
        ggml_tensor * t = ggml_graph_node(graph, i);
        graph_append(out, t);
        const auto k = i < n_forward ? r.kept.find(t) : r.kept.end();
        if (k != r.kept.end()) {
            graph_append(out, k->second); // kept as soon as it is made
        }
    }
    return out;
}

void graph_append(ggml_cgraph * graph, ggml_tensor * node) {
    if (node->flags & GGML_TENSOR_FLAG_COMPUTE) {
        ggml_build_forward_expand(graph, node);
    } else {
        ggml_build_forward_order(graph, node);
    }
}
