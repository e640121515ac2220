// autoact engine helper: a small Node addon beside node-llama-cpp's own (pinned to 3.21.1).
//
// Why it exists (measured, see bench/engine/engine-speed.ts):
//  - node-llama-cpp's prebuilt CPU binary has no OpenMP and never attaches a ggml threadpool,
//    so ggml starts and joins fresh threads for EVERY decode; attach() gives each context one
//    persistent threadpool instead (what llama.cpp's own tools do).
//  - Each node-llama-cpp decode and each sample is one hop to a libuv worker thread and back
//    (~50-100 us on a loaded 2-core box, more than a whole stories260K token). decode(),
//    argmax() and sample() run on the calling thread instead: the caller only decodes small
//    generation batches this way, so the event loop is blocked for one short decode at a time.
//
// It links against the very shared libraries node-llama-cpp has already loaded (same
// sonames), reads the llama_context pointer out of node-llama-cpp's AddonContext wrapper
// (compiled from the package's own header, so the layout matches) and checks it before use.
#include <cstdint>
#include <cstring>
#include <map>
#include <string>

#include "AddonContext.h"
#include "AddonSampler.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"
#include "llama.h"
#include <node_api.h>

#ifndef AUTOACT_ENGINE_HELPER_VERSION
#error "AUTOACT_ENGINE_HELPER_VERSION is set by autoact native build-engine (src/llm/native-access.ts)"
#endif

namespace {

using threadpool_new_t = ggml_threadpool_t (*)(ggml_threadpool_params *);
using threadpool_free_t = void (*)(ggml_threadpool_t);

struct Handle {
    llama_context * ctx = nullptr;
    ggml_threadpool_t pool = nullptr;
    threadpool_free_t pool_free = nullptr;
    llama_batch batch{};
    int32_t capacity = 0;
    int32_t n_vocab = 0;
    bool released = false;
};

// One thread pool per thread count, shared by every context of the process. The engine
// decodes one context at a time, so sharing is safe; separate pools would leave the idle
// pools' threads spinning on the same cores and slow the busy one down (three sub-agent
// contexts ran ~15x slower per token before this).
struct SharedPool {
    ggml_threadpool_t pool = nullptr;
    int32_t users = 0;
};
std::map<int32_t, SharedPool> shared_pools;

ggml_threadpool_t acquire_pool(threadpool_new_t pool_new, int32_t threads) {
    SharedPool & shared = shared_pools[threads];
    if (shared.pool == nullptr) {
        ggml_threadpool_params params = ggml_threadpool_params_default(threads);
        shared.pool = pool_new(&params);
        if (shared.pool == nullptr)
            return nullptr;
    }
    shared.users++;
    return shared.pool;
}

void release_pool(threadpool_free_t pool_free, ggml_threadpool_t pool) {
    for (auto it = shared_pools.begin(); it != shared_pools.end(); ++it) {
        if (it->second.pool == pool) {
            if (--it->second.users == 0) {
                pool_free(pool);
                shared_pools.erase(it);
            }
            return;
        }
    }
}

napi_value throw_error(napi_env env, const std::string & message) {
    napi_throw_error(env, nullptr, ("autoact engine helper: " + message).c_str());
    return nullptr;
}

void release(Handle * h) {
    if (h->released)
        return;
    h->released = true;
    if (h->pool != nullptr) {
        if (h->ctx != nullptr)
            llama_detach_threadpool(h->ctx);
        release_pool(h->pool_free, h->pool);
        h->pool = nullptr;
    }
    if (h->capacity > 0)
        llama_batch_free(h->batch);
    h->capacity = 0;
    h->ctx = nullptr;
}

void finalize_handle(napi_env, void * data, void *) {
    // The context may already be gone here: free the pool without touching it.
    auto * h = static_cast<Handle *>(data);
    h->ctx = nullptr;
    release(h);
    delete h;
}

Handle * get_handle(napi_env env, napi_value value) {
    void * data = nullptr;
    if (napi_get_value_external(env, value, &data) != napi_ok || data == nullptr) {
        throw_error(env, "expected a handle from attach()");
        return nullptr;
    }
    auto * h = static_cast<Handle *>(data);
    if (h->released) {
        throw_error(env, "handle was released");
        return nullptr;
    }
    return h;
}

bool get_i32(napi_env env, napi_value value, int32_t * out) {
    return napi_get_value_int32(env, value, out) == napi_ok;
}

// attach(addonContext, threads, expectedContextSize, expectedSequences, batchCapacity) -> handle
napi_value attach(napi_env env, napi_callback_info info) {
    size_t argc = 5;
    napi_value argv[5];
    napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
    int32_t threads = 0, n_ctx = 0, n_seq = 0, capacity = 0;
    if (argc < 5 || !get_i32(env, argv[1], &threads) || !get_i32(env, argv[2], &n_ctx) || !get_i32(env, argv[3], &n_seq) || !get_i32(env, argv[4], &capacity)
        || threads < 1 || capacity < 1)
        return throw_error(env, "attach(context, threads, contextSize, sequences, batchCapacity): bad arguments");
    void * wrapped = nullptr;
    if (napi_unwrap(env, argv[0], &wrapped) != napi_ok || wrapped == nullptr)
        return throw_error(env, "not a node-llama-cpp AddonContext");
    auto * addon = static_cast<AddonContext *>(wrapped);
    llama_context * ctx = addon->ctx;
    if (ctx == nullptr || !addon->contextLoaded || addon->disposed)
        return throw_error(env, "context is not loaded");
    if (addon->model == nullptr || addon->model->model != llama_get_model(ctx))
        return throw_error(env, "context layout check failed: model pointer (node-llama-cpp version mismatch?)");
    if (static_cast<int32_t>(llama_n_ctx(ctx)) < n_ctx || static_cast<int32_t>(llama_n_seq_max(ctx)) != n_seq)
        return throw_error(env, "context check failed: " + std::to_string(llama_n_ctx(ctx)) + " cells x " + std::to_string(llama_n_seq_max(ctx))
            + " sequences, expected at least " + std::to_string(n_ctx) + " x " + std::to_string(n_seq));

    ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    ggml_backend_reg_t reg = dev == nullptr ? nullptr : ggml_backend_dev_backend_reg(dev);
    auto pool_new = reg == nullptr ? nullptr : reinterpret_cast<threadpool_new_t>(ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_new"));
    auto pool_free = reg == nullptr ? nullptr : reinterpret_cast<threadpool_free_t>(ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_free"));
    if (pool_new == nullptr || pool_free == nullptr)
        return throw_error(env, "the CPU backend has no ggml_threadpool_new");

    auto * h = new Handle();
    h->ctx = ctx;
    h->pool_free = pool_free;
    h->pool = acquire_pool(pool_new, threads);
    if (h->pool == nullptr) {
        delete h;
        return throw_error(env, "cannot create a ggml threadpool");
    }
    llama_attach_threadpool(ctx, h->pool, h->pool);
    h->capacity = capacity;
    h->batch = llama_batch_init(capacity, 0, 1);
    h->n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(ctx)));

    napi_value external;
    if (napi_create_external(env, h, finalize_handle, nullptr, &external) != napi_ok) {
        release(h);
        delete h;
        return throw_error(env, "cannot create a handle");
    }
    return external;
}

// release(handle): detaches and frees the threadpool; call before the context is disposed.
napi_value release_fn(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1];
    napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
    void * data = nullptr;
    if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok || data == nullptr)
        return throw_error(env, "release(handle): bad arguments");
    release(static_cast<Handle *>(data));
    return nullptr;
}

bool typed_i32(napi_env env, napi_value value, int32_t ** data, size_t * length) {
    napi_typedarray_type type;
    void * raw = nullptr;
    napi_value buffer;
    size_t offset;
    if (napi_get_typedarray_info(env, value, &type, length, &raw, &buffer, &offset) != napi_ok || type != napi_int32_array)
        return false;
    *data = static_cast<int32_t *>(raw);
    return true;
}

// decode(handle, tokens, sequenceIds, positions, logitFlags: Int32Array x4, count) -> llama_decode status
// Synchronous: for small generation batches only.
napi_value decode(napi_env env, napi_callback_info info) {
    size_t argc = 6;
    napi_value argv[6];
    napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
    if (argc < 6)
        return throw_error(env, "decode(handle, tokens, sequenceIds, positions, logits, count): bad arguments");
    Handle * h = get_handle(env, argv[0]);
    if (h == nullptr)
        return nullptr;
    int32_t * tokens, * seqs, * pos, * logits;
    size_t n_tokens, n_seqs, n_pos, n_logits;
    int32_t count = 0;
    if (!typed_i32(env, argv[1], &tokens, &n_tokens) || !typed_i32(env, argv[2], &seqs, &n_seqs) || !typed_i32(env, argv[3], &pos, &n_pos)
        || !typed_i32(env, argv[4], &logits, &n_logits) || !get_i32(env, argv[5], &count)
        || count < 1 || count > h->capacity || static_cast<size_t>(count) > n_tokens || static_cast<size_t>(count) > n_seqs
        || static_cast<size_t>(count) > n_pos || static_cast<size_t>(count) > n_logits)
        return throw_error(env, "decode: bad arguments (Int32Arrays of at least count <= capacity entries)");
    llama_batch & b = h->batch;
    b.n_tokens = count;
    for (int32_t i = 0; i < count; i++) {
        b.token[i] = tokens[i];
        b.pos[i] = pos[i];
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = seqs[i];
        b.logits[i] = logits[i] != 0;
    }
    int32_t status = llama_decode(h->ctx, b);
    napi_value result;
    napi_create_int32(env, status, &result);
    return result;
}

// sample(handle, batchIndex, addonSampler) -> token (-1: nothing to sample). Exactly what
// node-llama-cpp's own sampleToken worker does (same functions of its addon, which this
// helper links against), on the calling thread: grammar, top-k/top-p, temperature, seed.
napi_value sample(napi_env env, napi_callback_info info) {
    size_t argc = 3;
    napi_value argv[3];
    napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
    if (argc < 3)
        return throw_error(env, "sample(handle, batchIndex, sampler): bad arguments");
    Handle * h = get_handle(env, argv[0]);
    if (h == nullptr)
        return nullptr;
    int32_t index = 0;
    void * wrapped = nullptr;
    if (!get_i32(env, argv[1], &index))
        return throw_error(env, "sample: bad batch index");
    if (napi_unwrap(env, argv[2], &wrapped) != napi_ok || wrapped == nullptr)
        return throw_error(env, "sample: not a node-llama-cpp AddonSampler");
    auto * sampler = static_cast<AddonSampler *>(wrapped);
    int32_t token = -1;
    try {
        sampler->rebuildChainIfNeeded();
        llama_token_data_array cur_p;
        sampler->sample(h->ctx, index, cur_p, false);
        if (cur_p.size > 0 && cur_p.selected >= 0 && cur_p.selected < static_cast<int64_t>(cur_p.size)) {
            token = cur_p.data[cur_p.selected].id;
            sampler->acceptToken(token);
        }
    } catch (const std::exception & e) {
        return throw_error(env, std::string("sampling failed: ") + e.what());
    } catch (...) {
        return throw_error(env, "sampling failed");
    }
    napi_value result;
    napi_create_int32(env, token, &result);
    return result;
}

// argmax(handle, batchIndex) -> token id with the highest logit (first on ties, as llama.cpp's greedy sampler)
napi_value argmax(napi_env env, napi_callback_info info) {
    size_t argc = 2;
    napi_value argv[2];
    napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
    if (argc < 2)
        return throw_error(env, "argmax(handle, batchIndex): bad arguments");
    Handle * h = get_handle(env, argv[0]);
    if (h == nullptr)
        return nullptr;
    int32_t index = 0;
    if (!get_i32(env, argv[1], &index))
        return throw_error(env, "argmax: bad batch index");
    const float * row = llama_get_logits_ith(h->ctx, index);
    if (row == nullptr)
        return throw_error(env, "argmax: no logits at that batch index");
    int32_t best = 0;
    for (int32_t t = 1; t < h->n_vocab; t++)
        if (row[t] > row[best])
            best = t;
    napi_value result;
    napi_create_int32(env, best, &result);
    return result;
}

napi_value init(napi_env env, napi_value exports) {
    napi_property_descriptor props[] = {
        {"attach", nullptr, attach, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"release", nullptr, release_fn, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"decode", nullptr, decode, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"argmax", nullptr, argmax, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"sample", nullptr, sample, nullptr, nullptr, nullptr, napi_default, nullptr},
    };
    napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
    napi_value version;
    napi_create_int32(env, AUTOACT_ENGINE_HELPER_VERSION, &version);
    napi_set_named_property(env, exports, "version", version);
    return exports;
}

} // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
