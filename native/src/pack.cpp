#include "pack.h"
#include "common.h"

#include <algorithm>

int32_t pack_capacity(const std::vector<sample> & samples, int64_t samples_per_step, int32_t batch_tokens) {
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
    const int64_t cap = std::max(longest, std::min<int64_t>(batch_tokens, step_max));
    return (int32_t) ((cap + 31) / 32 * 32);
}

int32_t pack_max_samples(int32_t capacity) {
    return std::min<int32_t>(256, capacity) - 1;
}

namespace {

void finish(micro_batch & mb, int32_t capacity, int32_t n_outputs) {
    // padding tokens: one more sequence, so that no sample attends to them
    const int32_t pad_seq = mb.n_samples;
    int32_t pad_pos = 0;
    while ((int32_t) mb.tokens.size() < capacity) {
        mb.tokens.push_back(0);
        mb.pos.push_back(pad_pos++);
        mb.seq.push_back(pad_seq);
        mb.outputs.push_back(0);
    }
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

std::vector<micro_batch> pack_samples(const std::vector<const sample *> & samples, int32_t capacity, float weight, int32_t n_outputs) {
    std::vector<micro_batch> out;
    micro_batch cur;
    const int32_t max_samples = pack_max_samples(capacity);
    for (const sample * s : samples) {
        const int32_t n = (int32_t) s->tokens.size();
        if (n > capacity) {
            throw input_error(string_format("sample %d has %d tokens, more than a micro-batch of %d (raise --batch-tokens)", s->index, n, capacity));
        }
        if ((int64_t) cur.tokens.size() + n > capacity || cur.n_samples == max_samples) {
            finish(cur, capacity, n_outputs);
            out.push_back(std::move(cur));
            cur = micro_batch();
        }
        size_t k = 0;
        for (int32_t i = 0; i < n; ++i) {
            cur.tokens.push_back(s->tokens[i]);
            cur.pos.push_back(i);
            cur.seq.push_back(cur.n_samples);
            cur.outputs.push_back(s->outputs[i]);
            if (s->outputs[i]) {
                cur.labels.push_back(s->labels[k++]);
                cur.weights.push_back(weight);
            }
        }
        cur.n_samples++;
        cur.n_tokens += n;
        cur.n_labels += (int64_t) s->labels.size();
    }
    if (cur.n_samples > 0) {
        finish(cur, capacity, n_outputs);
        out.push_back(std::move(cur));
    }
    return out;
}

int32_t pack_max_labels(const std::vector<const sample *> & samples, int32_t capacity) {
    int64_t most = 0;
    for (const micro_batch & mb : pack_samples(samples, capacity, 0.0f)) {
        most = std::max(most, mb.n_labels);
    }
    return (int32_t) most;
}
