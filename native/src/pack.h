// Packing: a step's samples laid side by side in micro-batches of one fixed shape, so that one
// training graph serves every micro-batch of the run.
//
// Shapes: T = tokens per micro-batch (fixed for the run), O = output rows (fixed too: the most
// trained positions any micro-batch of the run has), so that one graph serves the whole run.
// A micro-batch is one or more blocks of the same size side by side, no sample across two, and
// attention stays within a block (llama_autoact_set_attention_block): the scores of a micro-batch
// grow with T x block, not T squared.
// Each sample is its own sequence (positions from 0, attention only within the sample: the
// mask is block-diagonal); unused tokens form one more padding sequence. Padding outputs carry
// weight 0, so they change neither the loss nor the gradients.
#pragma once

#include "dataset.h"

#include <cstdint>
#include <vector>

struct micro_batch {
    std::vector<int32_t> tokens;  // [T]
    std::vector<int32_t> pos;     // [T] position within its sample
    std::vector<int32_t> seq;     // [T] sequence id: the sample's slot, or the padding sequence
    std::vector<int8_t>  outputs; // [T] 1 where a logit row is computed
    std::vector<int32_t> labels;  // [O] next token of each output row, in order
    std::vector<float>   weights; // [O] loss weight of each output row (0 = padding)
    int32_t n_samples = 0;
    int64_t n_tokens  = 0;        // real (not padding) tokens
    int64_t n_labels  = 0;        // real trained positions
};

// The micro-batches' shape: `blocks` blocks of `block` tokens.
struct pack_shape {
    int32_t block  = 32;
    int32_t blocks = 1;
    int32_t tokens() const { return block * blocks; }
};

// Largest number of samples in a micro-batch of `tokens` tokens: llama.cpp's limit of 256
// sequences (and of no more sequences than tokens), less the padding sequence.
int32_t pack_max_samples(int32_t tokens);

// The shape of a run. A block: the least of `n_ctx`, `batch_tokens` (0 = `n_ctx`) and the tokens
// of one step's longest samples, but never less than the longest sample; a multiple of 32.
// Blocks: as many as `batch_tokens` holds and one step's samples can fill, at least one.
pack_shape pack_plan(const std::vector<sample> & samples, int64_t samples_per_step, int32_t n_ctx, int32_t batch_tokens);

// Packs `samples` into micro-batches of `shape`, first fit: each, in the given order, into the
// first block with room (of any micro-batch so far; a new block after the last); each trained
// position gets `weight`. Every sample must fit a block. Each micro-batch gets `n_outputs` output
// rows (padding rows weigh 0); 0 = its own count, as is.
std::vector<micro_batch> pack_samples(const std::vector<const sample *> & samples, pack_shape shape, float weight, int32_t n_outputs = 0);

// The most trained positions of any micro-batch that packing `samples` gives.
int32_t pack_max_labels(const std::vector<const sample *> & samples, pack_shape shape);
