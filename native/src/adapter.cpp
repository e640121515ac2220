#include "adapter.h"
#include "args.h"
#include "common.h"
#include "dataset.h"

#include "ggml.h"
#include "gguf.h"

#include <algorithm>
#include <cmath>
#include <memory>

namespace {

struct gguf_deleter { void operator()(gguf_context * c) const { gguf_free(c); } };
struct ggml_deleter { void operator()(ggml_context * c) const { ggml_free(c); } };
using gguf_ptr = std::unique_ptr<gguf_context, gguf_deleter>;
using ggml_ptr = std::unique_ptr<ggml_context, ggml_deleter>;

// Reads a string value, checking its type first (a wrong type would abort inside gguf).
std::string kv_str(const gguf_context * g, const char * key) {
    const int64_t id = gguf_find_key(g, key);
    if (id < 0 || gguf_get_kv_type(g, id) != GGUF_TYPE_STRING) {
        return "";
    }
    return gguf_get_val_str(g, id);
}

bool ends_with(const std::string & s, const std::string & suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "autoact weights <16 hex digits>": FNV-1a of the tensors' names, shapes and values. llama-server
// reports an adapter's task name as it read it at load time (GET /lora-adapters), so a client can
// tell a server that loaded this file before a retrain rewrote it from one serving these weights.
std::string lora_weights_id(const lora_adapter & a) {
    uint64_t h = fnv1a_basis;
    for (const auto & t : a.tensors) {
        h = fnv1a(t.name.data(), t.name.size() + 1, h);
        h = fnv1a(&t.ne0, sizeof(t.ne0), h);
        h = fnv1a(&t.ne1, sizeof(t.ne1), h);
        h = fnv1a(t.value.data(), t.value.size() * sizeof(float), h);
    }
    h = fnv1a(&a.alpha, sizeof(a.alpha), h);
    return string_format("autoact weights %016llx", (unsigned long long) h);
}

} // namespace

base_info base_info_read(const std::string & path) {
    if (!file_exists(path)) {
        throw input_error("base model not found: " + path);
    }
    gguf_init_params params = { /*no_alloc =*/ true, /*ctx =*/ nullptr };
    gguf_ptr g(gguf_init_from_file(path.c_str(), params));
    if (!g) {
        throw input_error(path + ": not a readable GGUF file");
    }
    base_info info;
    info.arch = kv_str(g.get(), "general.architecture");
    if (info.arch.empty()) {
        throw input_error(path + ": no general.architecture in the GGUF header");
    }
    info.name = kv_str(g.get(), "general.name");
    if (info.name.empty()) {
        info.name = path.substr(path.find_last_of('/') + 1);
    }
    const int64_t split_id = gguf_find_key(g.get(), "split.count");
    info.split = split_id >= 0 && gguf_get_kv_type(g.get(), split_id) == GGUF_TYPE_UINT16 && gguf_get_val_u16(g.get(), split_id) > 1;
    for (int64_t i = 0; i < gguf_get_n_tensors(g.get()); ++i) {
        const int64_t * ne = gguf_get_tensor_ne(g.get(), i);
        info.tensor_ne[gguf_get_tensor_name(g.get(), i)] = { ne[0], ne[1], ne[2], ne[3] };
        info.tensor_type[gguf_get_tensor_name(g.get(), i)] = (int) gguf_get_tensor_type(g.get(), i);
    }
    return info;
}

lora_adapter lora_create(const base_info & base, const std::vector<std::string> & targets, int32_t rank, float alpha,
                         uint64_t seed, float b_scale) {
    lora_adapter a;
    a.arch  = base.arch;
    a.alpha = alpha;
    a.rank  = rank;
    for (const auto & target : targets) {
        int found = 0;
        for (auto it = base.tensor_ne.begin(); it != base.tensor_ne.end(); ++it) {
            // blk.<digits>.<target>.weight
            const std::string & w = it->first;
            const std::string suffix = "." + target + ".weight";
            if (w.rfind("blk.", 0) != 0 || !ends_with(w, suffix) || w.size() <= 4 + suffix.size()) {
                continue;
            }
            const std::string layer = w.substr(4, w.size() - 4 - suffix.size());
            if (layer.find_first_not_of("0123456789") != std::string::npos) {
                continue;
            }
            if (it->second[2] != 1 || it->second[3] != 1) {
                throw input_error("target " + target + ": " + w + " is not a matrix (expert tensors are not supported)");
            }
            found++;
            lora_tensor ta, tb;
            ta.name = w + ".lora_a"; ta.ne0 = it->second[0]; ta.ne1 = rank;
            tb.name = w + ".lora_b"; tb.ne0 = rank;          tb.ne1 = it->second[1];
            a.tensors.push_back(std::move(ta));
            a.tensors.push_back(std::move(tb));
        }
        if (found == 0) {
            throw input_error("target module " + target + " has no tensor blk.N." + target + ".weight in the base model (" + base.arch + ")");
        }
    }
    std::sort(a.tensors.begin(), a.tensors.end(), [](const lora_tensor & x, const lora_tensor & y) { return x.name < y.name; });

    rng64 rng(seed ^ 0x1a0ab1e5ull);
    for (auto & t : a.tensors) {
        const size_t n = (size_t) (t.ne0 * t.ne1);
        t.value.assign(n, 0.0f);
        t.m.assign(n, 0.0f);
        t.v.assign(n, 0.0f);
        const bool is_a = ends_with(t.name, ".lora_a");
        // PEFT's kaiming-uniform(a=sqrt(5)) bound for A: 1/sqrt(fan_in)
        const double bound = is_a ? 1.0 / std::sqrt((double) t.ne0) : b_scale / std::sqrt((double) t.ne0);
        if (is_a || b_scale > 0.0f) {
            for (auto & x : t.value) {
                x = (float) ((2.0 * rng.uniform() - 1.0) * bound);
            }
        }
    }
    return a;
}

lora_adapter lora_read(const std::string & path, const base_info & base) {
    if (!file_exists(path)) {
        throw input_error("adapter not found: " + path);
    }
    ggml_context * raw = nullptr;
    gguf_init_params params = { /*no_alloc =*/ false, /*ctx =*/ &raw };
    gguf_ptr g(gguf_init_from_file(path.c_str(), params));
    ggml_ptr ctx(raw);
    if (!g) {
        throw input_error(path + ": not a readable GGUF file");
    }
    if (kv_str(g.get(), "general.type") != "adapter" || kv_str(g.get(), "adapter.type") != "lora") {
        throw input_error(path + ": not a LoRA adapter (general.type must be 'adapter' and adapter.type 'lora')");
    }
    lora_adapter a;
    a.arch = kv_str(g.get(), "general.architecture");
    if (a.arch != base.arch) {
        throw input_error(path + ": adapter architecture '" + a.arch + "' does not match the base model's '" + base.arch + "'");
    }
    const int64_t alpha_id = gguf_find_key(g.get(), "adapter.lora.alpha");
    if (alpha_id < 0 || gguf_get_kv_type(g.get(), alpha_id) != GGUF_TYPE_FLOAT32) {
        throw input_error(path + ": adapter.lora.alpha missing or not float32");
    }
    a.alpha = gguf_get_val_f32(g.get(), alpha_id);
    for (int64_t i = 0; i < gguf_get_n_tensors(g.get()); ++i) {
        const std::string name = gguf_get_tensor_name(g.get(), i);
        const bool is_a = ends_with(name, ".lora_a");
        if (!is_a && !ends_with(name, ".lora_b")) {
            throw input_error(path + ": tensor '" + name + "' is neither .lora_a nor .lora_b");
        }
        const std::string w = name.substr(0, name.size() - 7);
        const auto it = base.tensor_ne.find(w);
        if (it == base.tensor_ne.end()) {
            throw input_error(path + ": tensor '" + name + "' adapts '" + w + "', which the base model does not have");
        }
        ggml_tensor * t = ggml_get_tensor(ctx.get(), name.c_str());
        lora_tensor lt;
        lt.name = name;
        lt.ne0  = t->ne[0];
        lt.ne1  = t->ne[1];
        const int64_t r = is_a ? lt.ne1 : lt.ne0;
        if ((is_a && lt.ne0 != it->second[0]) || (!is_a && lt.ne1 != it->second[1]) || (a.rank && r != a.rank)) {
            throw input_error(path + ": tensor '" + name + "' has a shape that does not fit the base model");
        }
        a.rank = (int32_t) r;
        const size_t n = (size_t) (lt.ne0 * lt.ne1);
        lt.value.resize(n);
        if (t->type == GGML_TYPE_F32) {
            std::copy((const float *) t->data, (const float *) t->data + n, lt.value.begin());
        } else if (t->type == GGML_TYPE_F16) {
            ggml_fp16_to_fp32_row((const ggml_fp16_t *) t->data, lt.value.data(), (int64_t) n);
        } else {
            throw input_error(path + ": tensor '" + name + "' is " + ggml_type_name(t->type) + "; only F32 and F16 adapters can be trained");
        }
        lt.m.assign(n, 0.0f);
        lt.v.assign(n, 0.0f);
        a.tensors.push_back(std::move(lt));
    }
    if (a.tensors.empty()) {
        throw input_error(path + ": the adapter has no tensors");
    }
    std::sort(a.tensors.begin(), a.tensors.end(), [](const lora_tensor & x, const lora_tensor & y) { return x.name < y.name; });
    return a;
}

void lora_write(const std::string & path, const lora_adapter & a, const std::map<std::string, std::string> & meta) {
    gguf_ptr g(gguf_init_empty());
    gguf_set_val_str(g.get(), "general.type", "adapter");
    gguf_set_val_str(g.get(), "general.architecture", a.arch.c_str());
    gguf_set_val_str(g.get(), "adapter.type", "lora");
    gguf_set_val_f32(g.get(), "adapter.lora.alpha", a.alpha);
    gguf_set_val_str(g.get(), "adapter.lora.task_name", lora_weights_id(a).c_str());
    for (const auto & [key, value] : meta) {
        gguf_set_val_str(g.get(), key.c_str(), value.c_str());
    }
    if (meta.count("general.base_model.0.name") > 0) {
        gguf_set_val_u32(g.get(), "general.base_model.count", 1); // GGUF's convention for what an adapter is of
    }
    ggml_init_params params = { /*mem_size =*/ (a.tensors.size() + 1) * ggml_tensor_overhead(), /*mem_buffer =*/ nullptr, /*no_alloc =*/ true };
    ggml_ptr ctx(ggml_init(params));
    for (const auto & t : a.tensors) {
        ggml_tensor * gt = ggml_new_tensor_2d(ctx.get(), GGML_TYPE_F32, t.ne0, t.ne1);
        ggml_set_name(gt, t.name.c_str());
        gt->data = (void *) t.value.data();
        gguf_add_tensor(g.get(), gt);
    }
    write_atomically(path, [&](const std::string & tmp) {
        if (!gguf_write_to_file(g.get(), tmp.c_str(), false)) {
            throw runtime_failure("cannot write " + tmp);
        }
    });
}

int64_t lora_n_params(const lora_adapter & a) {
    int64_t n = 0;
    for (const auto & t : a.tensors) {
        n += t.ne0 * t.ne1;
    }
    return n;
}

std::vector<std::string> lora_targets(const lora_adapter & a) {
    std::vector<std::string> found;
    for (const auto & t : a.tensors) {
        // blk.<i>.<module>.weight.lora_a
        const size_t first = t.name.find('.'), second = first == std::string::npos ? first : t.name.find('.', first + 1);
        const size_t weight = t.name.rfind(".weight.");
        if (t.name.rfind("blk.", 0) != 0 || second == std::string::npos || weight == std::string::npos || weight <= second) {
            continue;
        }
        const std::string module = t.name.substr(second + 1, weight - second - 1);
        if (std::find(found.begin(), found.end(), module) == found.end()) {
            found.push_back(module);
        }
    }
    std::vector<std::string> out;
    for (const auto & m : k_target_modules) {
        if (std::find(found.begin(), found.end(), m) != found.end()) {
            out.push_back(m);
        }
    }
    for (const auto & m : found) {
        if (std::find(out.begin(), out.end(), m) == out.end()) {
            out.push_back(m);
        }
    }
    return out;
}
