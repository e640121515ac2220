#include "dataset.h"
#include "common.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <numeric>

uint64_t rng64::next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double rng64::uniform() {
    return (double) (next() >> 11) * (1.0 / 9007199254740992.0);
}

namespace {

std::vector<size_t> permutation(size_t n, uint64_t seed) {
    std::vector<size_t> perm(n);
    std::iota(perm.begin(), perm.end(), 0);
    rng64 rng(seed);
    for (size_t i = n; i > 1; --i) {
        std::swap(perm[i - 1], perm[rng.next() % i]);
    }
    return perm;
}

template <typename T>
void read_exact(std::ifstream & in, T * dst, size_t n, const std::string & path, const char * what) {
    in.read(reinterpret_cast<char *>(dst), (std::streamsize) (n * sizeof(T)));
    if (!in || (size_t) in.gcount() != n * sizeof(T)) {
        throw input_error(path + ": truncated file while reading " + what);
    }
}

} // namespace

dataset dataset_load(const std::string & path, int32_t n_vocab, int32_t n_ctx, float eval_fraction, uint64_t seed) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw input_error("dataset not found: " + path);
    }
    char magic[4];
    uint32_t header[3];
    read_exact(in, magic, 4, path, "the header");
    read_exact(in, header, 3, path, "the header");
    if (memcmp(magic, "AATS", 4) != 0 || header[0] != 1) {
        throw input_error(path + ": not an autoact training-samples file (version 1)");
    }
    const uint32_t n_samples = header[1];

    std::vector<sample> all;
    int64_t n_skipped = 0;
    for (uint32_t s = 0; s < n_samples; ++s) {
        uint32_t n = 0;
        read_exact(in, &n, 1, path, string_format("sample %u", s).c_str());
        if (n > (1u << 24)) {
            throw input_error(string_format("%s: sample %u claims %u tokens: corrupt file", path.c_str(), s, n));
        }
        std::vector<int32_t> tokens(n);
        std::vector<uint8_t> mask(n);
        read_exact(in, tokens.data(), n, path, string_format("sample %u", s).c_str());
        read_exact(in, mask.data(), n, path, string_format("sample %u", s).c_str());
        if ((int64_t) n > n_ctx) {
            throw input_error(string_format("%s: sample %u has %u tokens, more than the context length %d (raise --ctx or shorten the sample)",
                        path.c_str(), s, n, n_ctx));
        }
        for (uint32_t i = 0; i < n; ++i) {
            if (tokens[i] < 0 || tokens[i] >= n_vocab) {
                throw input_error(string_format("%s: sample %u token %u is %d, outside the base model's vocabulary [0, %d)",
                            path.c_str(), s, i, tokens[i], n_vocab));
            }
            if (mask[i] > 1) {
                throw input_error(string_format("%s: sample %u mask %u is %u, expected 0 or 1", path.c_str(), s, i, mask[i]));
            }
        }
        int64_t last = -1; // last position i whose next token is trained
        for (uint32_t i = 0; i + 1 < n; ++i) {
            if (mask[i + 1]) {
                last = i;
            }
        }
        if (last < 0) {
            n_skipped++;
            continue;
        }
        sample smp;
        smp.index = (int32_t) s;
        smp.tokens.assign(tokens.begin(), tokens.begin() + last + 1);
        smp.outputs.resize(last + 1);
        for (int64_t i = 0; i <= last; ++i) {
            smp.outputs[i] = (int8_t) mask[i + 1];
            if (mask[i + 1]) {
                smp.labels.push_back(tokens[i + 1]);
            }
        }
        all.push_back(std::move(smp));
    }
    if (all.empty()) {
        throw input_error(n_samples == 0
                ? path + ": the dataset is empty"
                : path + ": no sample has a response token to train on (all masks are 0)");
    }

    dataset ds;
    ds.n_skipped = n_skipped;
    const size_t n_eval = eval_fraction > 0.0f ? std::min(all.size() - 1, (size_t) (eval_fraction * all.size() + 0.5)) : 0;
    // the split uses its own permutation so that it does not depend on the training order
    const std::vector<size_t> perm = permutation(all.size(), seed ^ 0x5eed5eed5eed5eedull);
    std::vector<bool> is_eval(all.size(), false);
    for (size_t i = 0; i < n_eval; ++i) {
        is_eval[perm[i]] = true;
    }
    for (size_t i = 0; i < all.size(); ++i) {
        (is_eval[i] ? ds.eval : ds.train).push_back(std::move(all[i]));
    }
    return ds;
}

size_t dataset_order(size_t n_train, uint64_t seed, int64_t k) {
    static uint64_t cached_seed = 0;
    static int64_t cached_epoch = -1;
    static size_t cached_n = 0;
    static std::vector<size_t> cached;
    const int64_t epoch = k / (int64_t) n_train;
    if (epoch != cached_epoch || seed != cached_seed || n_train != cached_n) {
        cached = permutation(n_train, seed * 0x100000001b3ull + (uint64_t) epoch + 1);
        cached_epoch = epoch;
        cached_seed = seed;
        cached_n = n_train;
    }
    return cached[(size_t) (k % (int64_t) n_train)];
}
