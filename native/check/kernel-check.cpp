// autoact-kernel-check: the CPU kernels that autoact's patches change, against a reference in
// double precision, over shapes that take each kernel's whole and partial blocks and several
// thread counts: the BF16 matmuls (ggml_mul_mat of a BF16 matrix and F32 values, as the input
// gradients through the BF16 weight copies run), the F32 out_prod of the LoRA weights' gradients
// (few result rows: register blocks; else ggml's own loop), the F32 sine that draws the LoRA
// dropout masks (vector code where the CPU has AVX2, else sinf), the F32 softmax whose rows'
// maximum is taken in vectors (attention's rows, the loss's vocabulary), and RMS_NORM and its
// backward, whose sums are, and transposed copies (bits moved, in register blocks), and the frozen
// weights' copies made in one step (dequantized, transposed and converted: the bits of ggml's
// ops). One JSON line per case; exit 0 when every result is within the tolerance, 1 otherwise.
//
//   autoact-kernel-check [--tolerance 1e-5]
//
// The tolerance is relative to the sum of the products' magnitudes: ggml rounds the F32 operand to
// BF16 as the kernels do, so the products are exact and only the order of the F32 sums differs.
// For RMS_NORM it is relative to the row's largest result. The sine's absolute error against the
// double-precision sine of the same input is held to 2.5e-7 (2 ulp of 1) and the softmax's to
// 1e-6, whatever --tolerance says.
#include "ggml.h"
#include "ggml-cpu.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

// Computes y on the CPU backend with n_threads threads.
bool compute(ggml_context * ctx, ggml_tensor * y, int n_threads) {
    ggml_cgraph * graph = ggml_new_graph(ctx);
    ggml_build_forward_expand(graph, y);
    return ggml_graph_compute_with_ctx(ctx, graph, n_threads) == GGML_STATUS_SUCCESS;
}

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
    if (!compute(ctx, y, n_threads)) {
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

struct out_prod_shape {
    int64_t cols;       // dst's row length (the LoRA input or output width)
    int64_t rows;       // dst's rows (the rank)
    int64_t k;          // the inner length (tokens)
    int64_t batch_a;    // src0's third dimension, broadcast over ...
    int64_t batch_b;    // ... src1's (and dst's)
    bool    transposed; // src1 a transposed view (its elements k apart)
};

// dst = out_prod(a [cols, k, batch_a], b [rows, k, batch_b]): dst[c, r, z] = sum over i of
// a[c, i, z / (batch_b / batch_a)] * b[r, i, z]; the largest error relative to the sums' magnitude.
double check_out_prod(const out_prod_shape & s, int n_threads, uint32_t seed) {
    const size_t floats = (size_t) (s.cols * s.k * s.batch_a + s.rows * s.k * s.batch_b + s.cols * s.rows * s.batch_b);
    ggml_init_params params = { floats * sizeof(float) + 16 * 1024 * 1024, nullptr, false };
    ggml_context * ctx = ggml_init(params);
    ggml_tensor * a = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, s.cols, s.k, s.batch_a);
    ggml_tensor * b = s.transposed ? ggml_transpose(ctx, ggml_new_tensor_3d(ctx, GGML_TYPE_F32, s.k, s.rows, s.batch_b))
                                   : ggml_new_tensor_3d(ctx, GGML_TYPE_F32, s.rows, s.k, s.batch_b);
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (ggml_tensor * t : { a, b }) {
        for (int64_t z = 0; z < t->ne[2]; ++z) {
            for (int64_t i = 0; i < t->ne[1]; ++i) {
                for (int64_t c = 0; c < t->ne[0]; ++c) {
                    *(float *) ((char *) t->data + c * t->nb[0] + i * t->nb[1] + z * t->nb[2]) = normal(rng);
                }
            }
        }
    }
    ggml_tensor * y = ggml_out_prod(ctx, a, b); // [cols, rows, batch_b]
    if (!compute(ctx, y, n_threads)) {
        ggml_free(ctx);
        return INFINITY;
    }
    const auto at = [](const ggml_tensor * t, int64_t c, int64_t i, int64_t z) {
        return (double) *(const float *) ((const char *) t->data + c * t->nb[0] + i * t->nb[1] + z * t->nb[2]);
    };
    double worst = 0.0;
    for (int64_t z = 0; z < s.batch_b; ++z) {
        for (int64_t r = 0; r < s.rows; ++r) {
            for (int64_t c = 0; c < s.cols; ++c) {
                double sum = 0.0;
                double magnitude = 0.0;
                for (int64_t i = 0; i < s.k; ++i) {
                    const double p = at(a, c, i, z / (s.batch_b / s.batch_a)) * at(b, r, i, z);
                    sum += p;
                    magnitude += std::fabs(p);
                }
                worst = std::fmax(worst, std::fabs(at(y, c, r, z) - sum) / (magnitude + 1e-30));
            }
        }
    }
    ggml_free(ctx);
    return worst;
}

// The largest absolute error of ggml_sin over `values` against the double-precision sine (NaN
// where both are NaN counts as equal; a NaN on one side only as infinitely wrong).
double check_sin(const std::vector<float> & values, int n_threads) {
    ggml_init_params params = { values.size() * sizeof(float) * 2 + 16 * 1024 * 1024, nullptr, false };
    ggml_context * ctx = ggml_init(params);
    // rows of 1001 values where the count allows (threads take rows; each row ends in a partial vector)
    const int64_t row = values.size() % 1001 == 0 ? 1001 : (int64_t) values.size();
    ggml_tensor * x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, row, (int64_t) values.size() / row);
    std::memcpy(x->data, values.data(), values.size() * sizeof(float));
    ggml_tensor * y = ggml_sin(ctx, x);
    if (!compute(ctx, y, n_threads)) {
        ggml_free(ctx);
        return INFINITY;
    }
    double worst = 0.0;
    for (size_t i = 0; i < values.size(); ++i) {
        const double want = std::sin((double) values[i]);
        const double got = ((const float *) y->data)[i];
        if (std::isnan(want) || std::isnan(got)) {
            worst = std::isnan(want) && std::isnan(got) ? worst : INFINITY;
        } else {
            worst = std::fmax(worst, std::fabs(got - want));
        }
    }
    ggml_free(ctx);
    return worst;
}

// The largest absolute error of ggml_soft_max over rows of `len` values against a double-precision
// softmax. A row's values span [-150, 0] but for a peak at a random place (in rows masked as
// causal attention's, among the values left): 100 there and values in [95, 100] at the next
// places, which share the probability. A row's largest value taken from elsewhere overflows the
// exponentials (e^100 is beyond F32), one too large underflows them all.
double check_soft_max(int64_t len, int64_t rows, bool masked, int n_threads, uint32_t seed) {
    ggml_init_params params = { (size_t) (len * rows) * sizeof(float) * 2 + 16 * 1024 * 1024, nullptr, false };
    ggml_context * ctx = ggml_init(params);
    ggml_tensor * x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, len, rows);
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> value(-150.0f, 0.0f);
    auto * xd = (float *) x->data;
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t kept = masked ? r * len / rows + 1 : len;
        for (int64_t i = 0; i < len; ++i) {
            xd[r * len + i] = i < kept ? value(rng) : -INFINITY;
        }
        const int64_t peak = std::uniform_int_distribution<int64_t>(0, kept - 1)(rng);
        std::uniform_real_distribution<float> high(95.0f, 100.0f);
        for (int64_t i = peak + 1; i < std::min(kept, peak + 5); ++i) {
            xd[r * len + i] = high(rng);
        }
        xd[r * len + peak] = 100.0f;
    }
    ggml_tensor * y = ggml_soft_max(ctx, x);
    if (!compute(ctx, y, n_threads)) {
        ggml_free(ctx);
        return INFINITY;
    }
    double worst = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
        double max = -INFINITY;
        for (int64_t i = 0; i < len; ++i) {
            max = std::fmax(max, (double) xd[r * len + i]);
        }
        double sum = 0.0;
        for (int64_t i = 0; i < len; ++i) {
            sum += std::exp((double) xd[r * len + i] - max);
        }
        for (int64_t i = 0; i < len; ++i) {
            const double want = std::exp((double) xd[r * len + i] - max) / sum;
            const double got = ((const float *) y->data)[r * len + i];
            worst = std::isnan(got) ? INFINITY : std::fmax(worst, std::fabs(got - want));
        }
    }
    ggml_free(ctx);
    return worst;
}

// The largest error of ggml_rms_norm (y = x / sqrt(mean(x^2) + eps)) and of its backward
// (dx = r dy - r^3 (x . dy) x / n, r = 1 / sqrt(mean(x^2) + eps)) over rows of `len` values,
// relative to the row's largest magnitude of the result, against double precision.
double check_rms_norm(int64_t len, int64_t rows, int n_threads, uint32_t seed) {
    const float eps = 1e-5f;
    ggml_init_params params = { (size_t) (len * rows) * sizeof(float) * 4 + 16 * 1024 * 1024, nullptr, false };
    ggml_context * ctx = ggml_init(params);
    ggml_tensor * x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, len, rows);
    ggml_tensor * dy = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, len, rows);
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (ggml_tensor * t : { x, dy }) {
        for (int64_t i = 0; i < len * rows; ++i) {
            ((float *) t->data)[i] = normal(rng);
        }
    }
    ggml_tensor * y = ggml_rms_norm(ctx, x, eps);
    ggml_tensor * dx = ggml_rms_norm_back(ctx, dy, x, eps); // the gradient first, as ggml's backward pass calls it
    if (!compute(ctx, y, n_threads) || !compute(ctx, dx, n_threads)) {
        ggml_free(ctx);
        return INFINITY;
    }
    double worst = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
        const float * xr = (const float *) x->data + r * len;
        const float * gr = (const float *) dy->data + r * len;
        double xx = 0.0, xg = 0.0;
        for (int64_t i = 0; i < len; ++i) {
            xx += (double) xr[i] * xr[i];
            xg += (double) xr[i] * gr[i];
        }
        const double rr = 1.0 / std::sqrt(xx / (double) len + eps);
        double y_max = 0.0, dx_max = 0.0, y_err = 0.0, dx_err = 0.0;
        for (int64_t i = 0; i < len; ++i) {
            const double want_y = xr[i] * rr;
            const double want_dx = rr * gr[i] - rr * rr * rr * xg * xr[i] / (double) len;
            y_max = std::fmax(y_max, std::fabs(want_y));
            dx_max = std::fmax(dx_max, std::fabs(want_dx));
            y_err = std::fmax(y_err, std::fabs(((const float *) y->data)[r * len + i] - want_y));
            dx_err = std::fmax(dx_err, std::fabs(((const float *) dx->data)[r * len + i] - want_dx));
        }
        worst = std::fmax(worst, std::fmax(y_err / y_max, dx_err / dx_max));
    }
    ggml_free(ctx);
    return worst;
}

// Entries of a transposed copy (ggml_cont of ggml_transpose, as the backward pass and the frozen
// weights' copies make them) that differ from the source's in any bit: the copy moves bits only.
int64_t check_transpose(ggml_type type, int64_t rows, int64_t cols, int n_threads, uint32_t seed) {
    const size_t elt = ggml_type_size(type);
    ggml_init_params params = { (size_t) (rows * cols) * elt * 2 + 1024 * 1024, nullptr, false };
    ggml_context * ctx = ggml_init(params);
    ggml_tensor * x = ggml_new_tensor_2d(ctx, type, cols, rows);
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (int64_t i = 0; i < rows * cols; ++i) {
        const float v = normal(rng);
        if (type == GGML_TYPE_F32) {
            ((float *) x->data)[i] = v;
        } else if (type == GGML_TYPE_F16) {
            ((ggml_fp16_t *) x->data)[i] = ggml_fp32_to_fp16(v);
        } else {
            ((ggml_bf16_t *) x->data)[i] = ggml_fp32_to_bf16(v);
        }
    }
    ggml_tensor * y = ggml_cont(ctx, ggml_transpose(ctx, x)); // cols rows of rows entries
    int64_t wrong = compute(ctx, y, n_threads) ? 0 : rows * cols;
    for (int64_t r = 0; wrong == 0 && r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
            wrong += std::memcmp((const char *) x->data + (r * cols + c) * elt, (const char *) y->data + (c * rows + r) * elt, elt) != 0;
        }
    }
    ggml_free(ctx);
    return wrong;
}

// Entries of a frozen weight's transposed copy made in one step by the CPU's own op
// (ggml_autoact_cpu_transposed_copy, a slice of rows `r0..r0 + rows` of the weight) that differ in
// any bit from the copy made of ggml's ops: dequantized (or converted) to F32, converted to `to`,
// transposed.
int64_t check_transposed_copy(ggml_type type, ggml_type to, int64_t k, int64_t rows, int64_t r0, bool line_aligned, int n_threads, uint32_t seed) {
    const int64_t all = r0 + rows + 3; // rows after the slice too
    ggml_init_params params = { (size_t) (all * k) * 16 + 4 * 1024 * 1024, nullptr, false };
    ggml_context * ctx = ggml_init(params);
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> values((size_t) (all * k));
    // an F32 weight's values take in NaNs, infinities, subnormals and halfway cases of BF16 and F16 too
    const uint32_t special[] = { 0x7fc00000, 0xffc00001, 0x7f800001, 0x7fbfffff, 0x7f800000, 0xff800000, 0x80000000, 0x00000001,
                                 0x807fffff, 0x7f7fffff, 0x3f808000, 0x3f818000, 0x3f80ffff, 0x477ff000, 0x33000000 };
    for (float & v : values) {
        v = normal(rng);
        if (type == GGML_TYPE_F32 && rng() % 7 == 0) {
            std::memcpy(&v, &special[rng() % (sizeof(special) / sizeof(special[0]))], sizeof(v));
        }
    }
    ggml_tensor * w = ggml_new_tensor_2d(ctx, type, k, all);
    if (type == GGML_TYPE_F32) {
        std::memcpy(w->data, values.data(), values.size() * sizeof(float));
    } else {
        ggml_quantize_chunk(type, values.data(), w->data, 0, all, k, nullptr);
    }
    if (type == GGML_TYPE_F16) { // and an F16 weight's: signalling and quiet NaNs, infinities, subnormals, the largest
        const uint16_t special16[] = { 0x7c01, 0x7e00, 0xfe01, 0x7dff, 0x7c00, 0xfc00, 0x8000, 0x0001, 0x83ff, 0x7bff, 0x0400 };
        for (int64_t i = 0; i < all * k; ++i) {
            if (rng() % 7 == 0) {
                ((uint16_t *) w->data)[i] = special16[rng() % (sizeof(special16) / sizeof(special16[0]))];
            }
        }
    }
    ggml_tensor * slice = ggml_view_2d(ctx, w, k, rows, w->nb[1], (size_t) r0 * w->nb[1]);
    ggml_tensor * as_f32 = ggml_cast(ctx, slice, GGML_TYPE_F32);
    ggml_tensor * expected = ggml_cont(ctx, ggml_transpose(ctx, to == GGML_TYPE_F32 ? as_f32 : ggml_cast(ctx, as_f32, to)));
    ggml_tensor * y = ggml_custom_4d(ctx, to, rows, k, 1, 1, &slice, 1, ggml_autoact_cpu_transposed_copy, GGML_N_TASKS_MAX, nullptr);
    // the copy where a backend's buffer puts it, on a cache line (stored past the cache where its
    // rows allow), or 16 bytes past one
    std::vector<char> storage(ggml_nbytes(y) + 128);
    char * line = storage.data() + (64 - (uintptr_t) storage.data() % 64) % 64;
    y->data = line + (line_aligned ? 0 : 16);
    const bool computed = compute(ctx, expected, 1) && compute(ctx, y, n_threads);
    int64_t wrong = computed ? 0 : rows * k;
    for (int64_t i = 0; computed && i < rows * k; ++i) {
        wrong += std::memcmp((const char *) expected->data + i * ggml_type_size(to), (const char *) y->data + i * ggml_type_size(to), ggml_type_size(to)) != 0;
    }
    ggml_free(ctx);
    return wrong;
}

} // namespace

int main(int argc, char ** argv) {
    double tolerance = 1e-5;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--tolerance") == 0 && i + 1 < argc) {
            tolerance = std::atof(argv[++i]);
        } else {
            std::fprintf(stderr, "autoact-kernel-check: unknown argument %s (usage: autoact-kernel-check [--tolerance 1e-5])\n", argv[i]);
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
    // the trainer's LoRA shapes (rank 8, widths of whole column blocks), a rank that leaves single
    // rows, the most rows the register blocks take and one more (ggml's loop), a width that is no
    // whole block (ggml's loop), a transposed src1 and src0 broadcast over a batch
    const out_prod_shape out_prod_shapes[] = {
        { 768, 8, 256, 1, 1, false }, { 2048, 8, 192, 1, 1, false }, { 256, 7, 37, 1, 1, false },
        { 128, 16, 64, 1, 1, false }, { 128, 17, 64, 1, 1, false }, { 100, 8, 40, 1, 1, false },
        { 256, 8, 33, 1, 1, true }, { 128, 5, 20, 2, 4, false },
    };
    bool ok = true;
    uint32_t seed = 1;
    for (const shape & s : shapes) {
        for (int n_threads : { 1, 2, 3 }) {
            const double err = check(s, n_threads, seed++);
            const bool pass = err <= tolerance;
            ok = ok && pass;
            std::printf("{\"op\":\"mul_mat_bf16\",\"m\":%lld,\"n\":%lld,\"k\":%lld,\"threads\":%d,\"max_rel_error\":%.3g,\"ok\":%s}\n",
                    (long long) s.m, (long long) s.n, (long long) s.k, n_threads, err, pass ? "true" : "false");
        }
    }
    for (const out_prod_shape & s : out_prod_shapes) {
        for (int n_threads : { 1, 3 }) {
            const double err = check_out_prod(s, n_threads, seed++);
            const bool pass = err <= tolerance;
            ok = ok && pass;
            std::printf("{\"op\":\"out_prod_f32\",\"cols\":%lld,\"rows\":%lld,\"k\":%lld,\"batch\":[%lld,%lld],\"transposed\":%s,\"threads\":%d,"
                        "\"max_rel_error\":%.3g,\"ok\":%s}\n",
                    (long long) s.cols, (long long) s.rows, (long long) s.k, (long long) s.batch_a, (long long) s.batch_b,
                    s.transposed ? "true" : "false", n_threads, err, pass ? "true" : "false");
        }
    }
    // the dropout masks' arguments ([-pi, pi]), the vector code's whole range, and values it hands
    // to sinf (past 8192, infinities, NaN) among ordinary ones
    std::mt19937 rng(seed);
    std::vector<float> dropout_range(100100), vector_range(100100);
    std::uniform_real_distribution<float> within_pi(-3.14159265f, 3.14159265f), within_8192(-8192.0f, 8192.0f);
    for (float & v : dropout_range) {
        v = within_pi(rng);
    }
    for (float & v : vector_range) {
        v = within_8192(rng);
    }
    std::vector<float> special = { 0.0f, -0.0f, 1e-30f, -1e-30f, 3.14159265f, -3.14159265f, 1.57079633f, 9.42477796f,
                                   8191.9f, -8192.0f, 8192.5f, -1e5f, 1e30f, INFINITY, -INFINITY, NAN, 0.5f, -2.5f, 100.0f };
    const std::pair<const char *, const std::vector<float> *> sin_cases[] = {
        { "dropout", &dropout_range }, { "to_8192", &vector_range }, { "special", &special },
    };
    for (const auto & [name, values] : sin_cases) {
        for (int n_threads : { 1, 3 }) {
            const double err = check_sin(*values, n_threads);
            const bool pass = err <= 2.5e-7;
            ok = ok && pass;
            std::printf("{\"op\":\"sin_f32\",\"values\":\"%s\",\"n\":%zu,\"threads\":%d,\"max_abs_error\":%.3g,\"ok\":%s}\n",
                    name, values->size(), n_threads, err, pass ? "true" : "false");
        }
    }
    // attention's rows (256, some half masked), a vocabulary's (the loss), and rows shorter than
    // the vector code's blocks or with a partial last block
    struct soft_max_case { int64_t len; int64_t rows; bool masked; };
    const soft_max_case soft_max_cases[] = { { 256, 12, false }, { 256, 12, true }, { 16384, 4, false }, { 37, 5, false }, { 5, 3, false } };
    for (const soft_max_case & c : soft_max_cases) {
        for (int n_threads : { 1, 3 }) {
            const double err = check_soft_max(c.len, c.rows, c.masked, n_threads, seed++);
            const bool pass = err <= 1e-6;
            ok = ok && pass;
            std::printf("{\"op\":\"soft_max_f32\",\"len\":%lld,\"rows\":%lld,\"masked\":%s,\"threads\":%d,\"max_abs_error\":%.3g,\"ok\":%s}\n",
                    (long long) c.len, (long long) c.rows, c.masked ? "true" : "false", n_threads, err, pass ? "true" : "false");
        }
    }
    // RMS_NORM and its backward: a model's width (768), a row shorter than a vector, a partial block
    struct rms_norm_case { int64_t len; int64_t rows; };
    const rms_norm_case rms_norm_cases[] = { { 768, 16 }, { 2048, 4 }, { 7, 5 }, { 100, 9 } };
    for (const rms_norm_case & c : rms_norm_cases) {
        for (int n_threads : { 1, 3 }) {
            const double err = check_rms_norm(c.len, c.rows, n_threads, seed++);
            const bool pass = err <= tolerance;
            ok = ok && pass;
            std::printf("{\"op\":\"rms_norm_f32\",\"len\":%lld,\"rows\":%lld,\"threads\":%d,\"max_rel_error\":%.3g,\"ok\":%s}\n",
                    (long long) c.len, (long long) c.rows, n_threads, err, pass ? "true" : "false");
        }
    }
    // transposed copies: whole 8 x 8 register blocks and 32 x 32 tiles, edges of each, fewer rows
    // than a block, and a 7B feed-forward slice's shape (4,096 x 1,856 rows of a Q4_K weight)
    struct transpose_case { int64_t rows; int64_t cols; };
    const transpose_case transpose_cases[] = { { 8, 8 }, { 32, 32 }, { 37, 45 }, { 5, 100 }, { 64, 1835 }, { 4096, 1856 } };
    for (ggml_type type : { GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16 }) {
        for (const transpose_case & c : transpose_cases) {
            for (int n_threads : { 1, 3 }) {
                const int64_t wrong = check_transpose(type, c.rows, c.cols, n_threads, seed++);
                ok = ok && wrong == 0;
                std::printf("{\"op\":\"transpose_%s\",\"rows\":%lld,\"cols\":%lld,\"threads\":%d,\"entries_wrong\":%lld,\"ok\":%s}\n",
                        ggml_type_name(type), (long long) c.rows, (long long) c.cols, n_threads, (long long) wrong, wrong == 0 ? "true" : "false");
            }
        }
    }
    // frozen weights' copies made in one step: block types of 256 and 32 columns and plain ones,
    // fewer rows than a tile, edges of tiles and of the threads' column ranges, slices of rows
    struct copy_case { ggml_type type; int64_t k; int64_t rows; int64_t r0; };
    const copy_case copy_cases[] = { { GGML_TYPE_Q4_K, 256, 40, 0 }, { GGML_TYPE_Q4_K, 768, 5, 7 }, { GGML_TYPE_Q8_0, 96, 33, 2 },
                                     { GGML_TYPE_Q8_0, 4096, 64, 64 }, { GGML_TYPE_F16, 45, 37, 1 }, { GGML_TYPE_BF16, 64, 100, 0 },
                                     { GGML_TYPE_Q4_K, 512, 96, 32 }, { GGML_TYPE_F32, 37, 45, 3 }, { GGML_TYPE_Q6_K, 256, 40, 0 },
                                     { GGML_TYPE_Q6_K, 768, 37, 5 }, { GGML_TYPE_F16, 72, 64, 0 } };
    for (const copy_case & c : copy_cases) {
        for (ggml_type to : { GGML_TYPE_BF16, GGML_TYPE_F16, GGML_TYPE_F32 }) {
            for (bool line_aligned : { true, false }) {
                for (int n_threads : { 1, 3 }) {
                    const int64_t wrong = check_transposed_copy(c.type, to, c.k, c.rows, c.r0, line_aligned, n_threads, seed++);
                    ok = ok && wrong == 0;
                    std::printf("{\"op\":\"transposed_copy_%s_to_%s\",\"k\":%lld,\"rows\":%lld,\"line_aligned\":%s,\"threads\":%d,"
                            "\"entries_wrong\":%lld,\"ok\":%s}\n", ggml_type_name(c.type), ggml_type_name(to), (long long) c.k,
                            (long long) c.rows, line_aligned ? "true" : "false", n_threads, (long long) wrong, wrong == 0 ? "true" : "false");
                }
            }
        }
    }
    return ok ? 0 : 1;
}
