// Tokenized training samples: the file written by src/train (format in native/README.md),
// the held-out split, and the seeded order in which steps consume samples.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

struct sample {
    int32_t              index;   // position in the file (for error messages)
    std::vector<int32_t> tokens;  // the tokens fed: up to the last one whose next token is trained
    std::vector<int8_t>  outputs; // 1 where the position's prediction is trained
    std::vector<int32_t> labels;  // the trained next tokens, one per output position, in order
};

struct dataset {
    std::vector<sample> train;
    std::vector<sample> eval;
    int64_t n_skipped = 0; // samples without any response token
};

// Reads and validates the file: tokens in [0, n_vocab), masks of 0/1, no sample longer than n_ctx.
// Throws input_error naming the sample on bad input or when nothing is left to train on.
dataset dataset_load(const std::string & path, int32_t n_vocab, int32_t n_ctx, float eval_fraction, uint64_t seed);

// Index into ds.train of the k-th sample consumed by the run (k counts across epochs): each
// epoch is a permutation seeded by (seed, epoch), so the order needs no state to resume.
size_t dataset_order(size_t n_train, uint64_t seed, int64_t k);

// A small deterministic generator (splitmix64): the same numbers on every platform.
struct rng64 {
    uint64_t state;
    explicit rng64(uint64_t seed) : state(seed) {}
    uint64_t next();
    double uniform(); // [0, 1)
};
