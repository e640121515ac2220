#include "pack.h"
#include "common.h"

#include <algorithm>

namespace {

int32_t round_up_32(int64_t n) {
    return (int32_t) ((n + 31) / 32 * 32);
}

} // namespace

pack_shape pack_plan(const std::vector<sample> & samples, int64_t samples_per_step, int32_t n_ctx, int32_t batch_tokens) {
    std::vector<int64_t> lengths;
    for (const auto & s : samples) {
        lengths.push_back((int64_t) s.tokens.size());
    }
    std::sort(lengths.begin(), lengths.end(), std::greater<int64_t>());
    int64_t step_max = 0; // the most tokens one step can bring
    for (int64_t i = 0; i < (int64_t) lengths.size() && i < samples_per_step; ++i) {
        step_max += lengths[i];
    }
    const int64_t longest = lengths.empty() ? 1 : lengths.front();
    const int64_t budget  = batch_tokens > 0 ? batch_tokens : n_ctx;
    pack_shape shape;
    shape.block  = round_up_32(std::max(longest, std::min({ (int64_t) n_ctx, budget, step_max })));
    const int64_t fill = (step_max + shape.block - 1) / shape.block; // the blocks one step can fill
    shape.blocks = (int32_t) std::max<int64_t>(1, std::min(budget / shape.block, fill));
    return shape;
}

int32_t pack_max_samples(int32_t tokens) {
    return std::min<int32_t>(256, tokens) - 1;
}

namespace {

// Padding tokens up to `end` in a micro-batch of `capacity` tokens: one more sequence (the last
// id, after every sample's), so that no sample attends to them; its positions count on through
// the micro-batch.
void pad_to(micro_batch & mb, int32_t end, int32_t capacity) {
    const int32_t pad_seq = pack_max_samples(capacity);
    while ((int32_t) mb.tokens.size() < end) {
        mb.pos.push_back((int32_t) ((int64_t) mb.tokens.size() - mb.n_tokens));
        mb.tokens.push_back(0);
        mb.seq.push_back(pad_seq);
        mb.outputs.push_back(0);
    }
}

// A sample as the micro-batch's next sequence, its trained positions weighing `weight`.
void append(micro_batch & mb, const sample & s, float weight) {
    size_t k = 0;
    for (size_t i = 0; i < s.tokens.size(); ++i) {
        mb.tokens.push_back(s.tokens[i]);
        mb.pos.push_back((int32_t) i);
        mb.seq.push_back(mb.n_samples);
        mb.outputs.push_back(s.outputs[i]);
        if (s.outputs[i]) {
            mb.labels.push_back(s.labels[k++]);
            mb.weights.push_back(weight);
        }
    }
    mb.n_samples++;
    mb.n_tokens += (int64_t) s.tokens.size();
    mb.n_labels += (int64_t) s.labels.size();
}

void finish(micro_batch & mb, int32_t capacity, int32_t n_outputs) {
    pad_to(mb, capacity, capacity);
    // padding outputs: the first positions without an output, weight 0, in position order
    const int32_t n_out = std::max<int32_t>((int32_t) mb.n_labels, std::min(n_outputs, capacity));
    int32_t missing = n_out - (int32_t) mb.n_labels;
    std::vector<int32_t> labels, order;
    std::vector<float> weights;
    for (int32_t i = 0; i < capacity && missing > 0; ++i) {
        if (!mb.outputs[i]) {
            mb.outputs[i] = 2; // marked: a padding output
            missing--;
        }
    }
    // labels and weights follow the output rows' order (position order)
    size_t real = 0;
    for (int32_t i = 0; i < capacity; ++i) {
        if (mb.outputs[i] == 1) {
            labels.push_back(mb.labels[real]);
            weights.push_back(mb.weights[real]);
            real++;
        } else if (mb.outputs[i] == 2) {
            labels.push_back(0);
            weights.push_back(0.0f);
            mb.outputs[i] = 1;
        }
    }
    mb.labels  = std::move(labels);
    mb.weights = std::move(weights);
}

} // namespace

std::vector<micro_batch> pack_samples(const std::vector<const sample *> & samples, pack_shape shape, float weight, int32_t n_outputs) {
    const int32_t capacity    = shape.tokens();
    const int32_t max_samples = pack_max_samples(capacity);
    // first fit: each sample, in order, into the first block with room whose micro-batch has a
    // sequence left; micro-batch m is blocks m * shape.blocks and on
    std::vector<std::vector<const sample *>> blocks;
    std::vector<int32_t> used;     // tokens of each block
    std::vector<int32_t> n_seqs;   // samples of each micro-batch
    for (const sample * s : samples) {
        const int32_t n = (int32_t) s->tokens.size();
        if (n > shape.block) {
            throw input_error(string_format("sample %d has %d tokens, more than a micro-batch's block of %d (raise --batch-tokens)", s->index, n, shape.block));
        }
        size_t b = 0;
        while (b < blocks.size() && (used[b] + n > shape.block || n_seqs[b / shape.blocks] == max_samples)) {
            b++;
        }
        if (b == blocks.size()) {
            // a new block, in a new micro-batch when the last one has no sequence left
            while (b % shape.blocks != 0 && n_seqs.back() == max_samples) {
                blocks.emplace_back();
                used.push_back(0);
                b++;
            }
            if (b % shape.blocks == 0) {
                n_seqs.push_back(0);
            }
            blocks.emplace_back();
            used.push_back(0);
        }
        blocks[b].push_back(s);
        used[b] += n;
        n_seqs[b / shape.blocks]++;
    }

    std::vector<micro_batch> out;
    for (size_t first = 0; first < blocks.size(); first += shape.blocks) {
        micro_batch mb;
        for (size_t b = first; b < blocks.size() && b < first + shape.blocks; ++b) {
            pad_to(mb, (int32_t) (b - first) * shape.block, capacity);
            for (const sample * smp : blocks[b]) {
                append(mb, *smp, weight);
            }
        }
        finish(mb, capacity, n_outputs);
        out.push_back(std::move(mb));
    }
    return out;
}

int32_t pack_max_labels(const std::vector<const sample *> & samples, pack_shape shape) {
    int64_t most = 0;
    for (const micro_batch & mb : pack_samples(samples, shape, 0.0f)) {
        most = std::max(most, mb.n_labels);
    }
    return (int32_t) most;
}
