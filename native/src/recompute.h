// Activation recomputation (gradient checkpointing) for a training graph: the backward pass reads
// each layer's activations from copies recomputed from the layer's input, just before it needs
// them, instead of the forward pass's, so that these are freed as soon as the forward pass is
// done with them. Peak memory: the layers' inputs plus one layer's activations, not all layers';
// cost: about one more forward pass.
#pragma once

struct ggml_context;
struct ggml_cgraph;

// `graph` holds the forward pass in its first `n_forward` nodes and the backward pass after them.
// The layers' outputs (llama.cpp's "l_out-<layer>") are kept; every other forward node that the
// backward pass reads is recomputed from them: every one with `n_layers` < 0, else only those up
// to the output of the first `n_layers` layers, the later layers' activations kept (memory for
// theirs; time for n_layers / all of one more forward pass). Returns the new graph (in `ctx`);
// `graph` itself, after a warning on stderr, when it names no layer outputs; nullptr when the
// copies do not fit in a graph of `graph`'s size.
ggml_cgraph * recompute_activations(ggml_context * ctx, ggml_cgraph * graph, int n_forward, int n_layers = -1);

struct ggml_tensor;

// Appends `node` (and the sources `graph` lacks, before it) to `graph`, computed only when it was
// computed where it came from: llama.cpp's graphs hold branches they do not select (token or
// embedding input), which ggml_build_forward_expand would turn on.
void graph_append(ggml_cgraph * graph, ggml_tensor * node);
