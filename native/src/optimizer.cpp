#include "optimizer.h"
#include "common.h"

#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace {

void compute(device_adamw & opt, ggml_cgraph * g) {
    ggml_backend_sched_reset(opt.sched);
    if (!ggml_backend_sched_alloc_graph(opt.sched, g)) {
        throw runtime_failure("cannot allocate the optimizer's graph");
    }
    if (ggml_backend_sched_graph_compute(opt.sched, g) != GGML_STATUS_SUCCESS) {
        throw runtime_failure("the optimizer's graph failed to compute");
    }
}

} // namespace

void adamw_init(device_adamw & opt, lora_adapter & adapter, const adamw_settings & settings, int n_threads) {
    opt.adapter  = &adapter;
    opt.settings = settings;
    const size_t n = adapter.tensors.size();
    const size_t graph_size = 16 * n + 16;
    ggml_init_params params = {
        /*mem_size   =*/ (2 * n + 8 + 8 * n) * ggml_tensor_overhead() + 2 * ggml_graph_overhead_custom(graph_size, false),
        /*mem_buffer =*/ nullptr,
        /*no_alloc   =*/ true,
    };
    opt.ctx = ggml_init(params);

    // the moments, allocated by buffer type so that each lives beside its parameter
    std::map<ggml_backend_buffer_type_t, ggml_context *> by_buft;
    for (size_t i = 0; i < n; ++i) {
        ggml_tensor * p = adapter.tensors[i].dev;
        ggml_backend_buffer_type_t buft = ggml_backend_buffer_get_type(p->buffer);
        if (!by_buft.count(buft)) {
            ggml_init_params mp = { (2 * n + 1) * ggml_tensor_overhead(), nullptr, true };
            by_buft[buft] = ggml_init(mp);
        }
        ggml_context * mctx = by_buft[buft];
        opt.m.push_back(ggml_dup_tensor(mctx, p));
        opt.v.push_back(ggml_dup_tensor(mctx, p));
        ggml_format_name(opt.m.back(), "adam_m.%s", adapter.tensors[i].name.c_str());
        ggml_format_name(opt.v.back(), "adam_v.%s", adapter.tensors[i].name.c_str());
    }
    for (auto & [buft, mctx] : by_buft) {
        ggml_backend_buffer * buf = ggml_backend_alloc_ctx_tensors_from_buft(mctx, buft);
        if (!buf) {
            throw runtime_failure("cannot allocate the AdamW moments");
        }
        ggml_backend_buffer_clear(buf, 0);
        opt.buffers.push_back(buf);
        opt.moment_ctxs.push_back(mctx);
    }

    // one backend per device that holds adapter tensors, the CPU last
    std::vector<ggml_backend_dev_t> devs;
    for (auto & [buft, mctx] : by_buft) {
        ggml_backend_dev_t dev = ggml_backend_buft_get_device(buft);
        if (dev && ggml_backend_dev_type(dev) != GGML_BACKEND_DEVICE_TYPE_CPU &&
            std::find(devs.begin(), devs.end(), dev) == devs.end()) {
            devs.push_back(dev);
        }
    }
    for (ggml_backend_dev_t dev : devs) {
        opt.backends.push_back(ggml_backend_dev_init(dev, nullptr));
    }
    ggml_backend * cpu = ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_CPU, nullptr);
    ggml_backend_cpu_set_n_threads(cpu, n_threads);
    opt.backends.push_back(cpu);

    // the step's inputs live in host memory (the CPU kernel reads them there; GPUs get a copy)
    opt.params = ggml_new_tensor_1d(opt.ctx, GGML_TYPE_F32, 7);
    opt.gscale = ggml_new_tensor_1d(opt.ctx, GGML_TYPE_F32, 1);
    ggml_set_name(opt.params, "adamw_params");
    ggml_set_name(opt.gscale, "adamw_gscale");
    ggml_set_input(opt.params);
    ggml_set_input(opt.gscale);
    opt.host_buf = ggml_backend_alloc_ctx_tensors_from_buft(opt.ctx, ggml_backend_cpu_buffer_type());

    // graph 1: the squared global norm
    opt.g_norm = ggml_new_graph_custom(opt.ctx, graph_size, false);
    for (size_t i = 0; i < n; ++i) {
        ggml_tensor * s = ggml_sum(opt.ctx, ggml_sqr(opt.ctx, adapter.tensors[i].grad));
        opt.norm2 = opt.norm2 ? ggml_add(opt.ctx, opt.norm2, s) : s;
    }
    ggml_set_output(opt.norm2);
    ggml_build_forward_expand(opt.g_norm, opt.norm2);

    // graph 2: clip, then AdamW in place
    opt.g_step = ggml_new_graph_custom(opt.ctx, graph_size, false);
    for (size_t i = 0; i < n; ++i) {
        lora_tensor & t = adapter.tensors[i];
        ggml_tensor * g = ggml_mul(opt.ctx, t.grad, opt.gscale);
        ggml_build_forward_expand(opt.g_step, ggml_opt_step_adamw(opt.ctx, t.dev, g, opt.m[i], opt.v[i], opt.params));
    }

    std::vector<ggml_backend_buffer_type_t> bufts;
    for (ggml_backend * b : opt.backends) {
        bufts.push_back(ggml_backend_get_default_buffer_type(b));
    }
    opt.sched = ggml_backend_sched_new(opt.backends.data(), bufts.data(), (int) opt.backends.size(), graph_size, false, true);
}

void adamw_free(device_adamw & opt) {
    if (opt.sched) {
        ggml_backend_sched_free(opt.sched);
    }
    for (ggml_backend * b : opt.backends) {
        ggml_backend_free(b);
    }
    for (ggml_backend_buffer * b : opt.buffers) {
        ggml_backend_buffer_free(b);
    }
    for (ggml_context * c : opt.moment_ctxs) {
        ggml_free(c);
    }
    if (opt.host_buf) {
        ggml_backend_buffer_free(opt.host_buf);
    }
    if (opt.ctx) {
        ggml_free(opt.ctx);
    }
    opt = device_adamw();
}

double adamw_grad_norm(device_adamw & opt) {
    compute(opt, opt.g_norm);
    float n2 = 0.0f;
    ggml_backend_tensor_get(opt.norm2, &n2, 0, sizeof(float));
    return std::sqrt((double) n2);
}

void adamw_step(device_adamw & opt, double lr, int64_t step, float gscale) {
    const adamw_settings & s = opt.settings;
    const float params[7] = {
        (float) lr, s.beta1, s.beta2, s.eps, s.weight_decay,
        (float) (1.0 / (1.0 - std::pow((double) s.beta1, (double) step))),
        (float) (1.0 / (1.0 - std::pow((double) s.beta2, (double) step))),
    };
    ggml_backend_tensor_set(opt.params, params, 0, sizeof(params));
    ggml_backend_tensor_set(opt.gscale, &gscale, 0, sizeof(float));
    compute(opt, opt.g_step);
}

void adamw_download(device_adamw & opt) {
    for (size_t i = 0; i < opt.adapter->tensors.size(); ++i) {
        lora_tensor & t = opt.adapter->tensors[i];
        ggml_backend_tensor_get(t.dev, t.value.data(), 0, ggml_nbytes(t.dev));
        ggml_backend_tensor_get(opt.m[i], t.m.data(), 0, ggml_nbytes(opt.m[i]));
        ggml_backend_tensor_get(opt.v[i], t.v.data(), 0, ggml_nbytes(opt.v[i]));
    }
}

void adamw_upload(device_adamw & opt) {
    for (size_t i = 0; i < opt.adapter->tensors.size(); ++i) {
        lora_tensor & t = opt.adapter->tensors[i];
        ggml_backend_tensor_set(t.dev, t.value.data(), 0, ggml_nbytes(t.dev));
        ggml_backend_tensor_set(opt.m[i], t.m.data(), 0, ggml_nbytes(opt.m[i]));
        ggml_backend_tensor_set(opt.v[i], t.v.data(), 0, ggml_nbytes(opt.v[i]));
    }
}
