// autoact-matmul-check: the CPU's BF16 matmuls (ggml_mul_mat of a BF16 matrix and F32 values, as
// the trainer's input gradients through its BF16 weight copies run) against a reference in double
// precision, over shapes that take each kernel's whole and partial blocks and several thread
// counts. One JSON line per case; exit 0 when every result is within the tolerance, 1 otherwise.
//
//   autoact-matmul-check [--tolerance 1e-5]
//
// The tolerance is relative to the sum of the products' magnitudes: ggml rounds the F32 operand to
// BF16 as the kernels do, so the products are exact and only the order of the F32 sums differs.
#include "ggml.h"
#include "ggml-cpu.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

struct shape {
    int64_t m; // rows of the BF16 matrix (outputs per column)
    int64_t n; // columns of values (tokens)
    int64_t k; // the inner length
};

// The largest error of one product relative to the magnitude of its sums.
double check(const shape & s, int n_threads, uint32_t seed) {
    const size_t bytes = (size_t) (s.m * s.k * 2 + s.k * s.n * 4 * 2 + s.m * s.n * 4) + 16 * 1024 * 1024;
    ggml_init_params params = { bytes, nullptr, false };
    ggml_context * ctx = ggml_init(params);
    ggml_tensor * w = ggml_new_tensor_2d(ctx, GGML_TYPE_BF16, s.k, s.m);
    ggml_tensor * x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, s.k, s.n);
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    auto * wd = (ggml_bf16_t *) w->data;
    auto * xd = (float *) x->data;
    for (int64_t i = 0; i < s.m * s.k; ++i) {
        wd[i] = ggml_fp32_to_bf16(normal(rng));
    }
    for (int64_t i = 0; i < s.k * s.n; ++i) {
        xd[i] = normal(rng);
    }
    ggml_tensor * y = ggml_mul_mat(ctx, w, x); // [m, n]
    ggml_cgraph * graph = ggml_new_graph(ctx);
    ggml_build_forward_expand(graph, y);
    if (ggml_graph_compute_with_ctx(ctx, graph, n_threads) != GGML_STATUS_SUCCESS) {
        ggml_free(ctx);
        return INFINITY;
    }
    double worst = 0.0;
    const auto * yd = (const float *) y->data;
    for (int64_t j = 0; j < s.n; ++j) {
        for (int64_t i = 0; i < s.m; ++i) {
            double sum = 0.0;
            double magnitude = 0.0;
            for (int64_t l = 0; l < s.k; ++l) {
                const double p = (double) ggml_bf16_to_fp32(wd[i * s.k + l]) *
                                 (double) ggml_bf16_to_fp32(ggml_fp32_to_bf16(xd[j * s.k + l]));
                sum += p;
                magnitude += std::fabs(p);
            }
            worst = std::fmax(worst, std::fabs((double) yd[j * s.m + i] - sum) / (magnitude + 1e-30));
        }
    }
    ggml_free(ctx);
    return worst;
}

} // namespace

int main(int argc, char ** argv) {
    double tolerance = 1e-5;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--tolerance") == 0 && i + 1 < argc) {
            tolerance = std::atof(argv[++i]);
        } else {
            std::fprintf(stderr, "autoact-matmul-check: unknown argument %s (usage: autoact-matmul-check [--tolerance 1e-5])\n", argv[i]);
            return 2;
        }
    }
    // whole blocks of 32, a last block of B's rows cut short, fewer rows than a block (the
    // vector kernels'), a row count that is not a whole block, inner lengths of one and many
    // tiles, and of more than one chunk of K (2048), a short block among them
    const shape shapes[] = {
        { 32, 32, 32 }, { 64, 256, 768 }, { 96, 33, 64 }, { 64, 47, 96 }, { 128, 100, 256 },
        { 32, 7, 64 }, { 48, 64, 64 }, { 768, 256, 128 }, { 64, 64, 40 }, { 32, 40, 4160 }, { 64, 96, 4096 },
    };
    bool ok = true;
    uint32_t seed = 1;
    for (const shape & s : shapes) {
        for (int n_threads : { 1, 2, 3 }) {
            const double err = check(s, n_threads, seed++);
            const bool pass = err <= tolerance;
            ok = ok && pass;
            std::printf("{\"m\":%lld,\"n\":%lld,\"k\":%lld,\"threads\":%d,\"max_rel_error\":%.3g,\"ok\":%s}\n",
                    (long long) s.m, (long long) s.n, (long long) s.k, n_threads, err, pass ? "true" : "false");
        }
    }
    return ok ? 0 : 1;
}
