#include "checkpoint.h"
#include "common.h"

#include "ggml.h"
#include "gguf.h"

#include <algorithm>
#include <memory>

namespace {

struct gguf_deleter { void operator()(gguf_context * c) const { gguf_free(c); } };
struct ggml_deleter { void operator()(ggml_context * c) const { ggml_free(c); } };

const char * k_prefix = "autoact.ckpt.structure.";

} // namespace

void checkpoint_save(const std::string & path, const lora_adapter & a, const checkpoint_state & state) {
    std::unique_ptr<gguf_context, gguf_deleter> g(gguf_init_empty());
    gguf_set_val_str(g.get(), "general.type", "autoact.checkpoint");
    gguf_set_val_str(g.get(), "general.architecture", a.arch.c_str());
    gguf_set_val_u32(g.get(), "autoact.ckpt.version", 1);
    gguf_set_val_f32(g.get(), "adapter.lora.alpha", a.alpha);
    gguf_set_val_u32(g.get(), "adapter.lora.rank", (uint32_t) a.rank);
    gguf_set_val_u64(g.get(), "autoact.ckpt.step", (uint64_t) state.step);
    gguf_set_val_f64(g.get(), "autoact.ckpt.elapsed_s", state.elapsed_s);
    gguf_set_val_u64(g.get(), "autoact.ckpt.tokens", (uint64_t) state.tokens);
    gguf_set_val_f64(g.get(), "autoact.ckpt.first_loss", state.first_loss);
    gguf_set_val_f64(g.get(), "autoact.ckpt.last_loss", state.last_loss);
    for (const auto & [key, value] : state.structure) {
        gguf_set_val_str(g.get(), (k_prefix + key).c_str(), value.c_str());
    }
    ggml_init_params params = { (3 * a.tensors.size() + 1) * ggml_tensor_overhead(), nullptr, true };
    std::unique_ptr<ggml_context, ggml_deleter> ctx(ggml_init(params));
    for (const auto & t : a.tensors) {
        const std::pair<const char *, const std::vector<float> *> parts[] = { { "", &t.value }, { ".adam_m", &t.m }, { ".adam_v", &t.v } };
        for (const auto & [suffix, data] : parts) {
            ggml_tensor * gt = ggml_new_tensor_2d(ctx.get(), GGML_TYPE_F32, t.ne0, t.ne1);
            ggml_set_name(gt, (t.name + suffix).c_str());
            gt->data = (void *) data->data();
            gguf_add_tensor(g.get(), gt);
        }
    }
    write_atomically(path, [&](const std::string & tmp) {
        if (!gguf_write_to_file(g.get(), tmp.c_str(), false)) {
            throw runtime_failure("cannot write checkpoint " + tmp);
        }
    });
}

lora_adapter checkpoint_load(const std::string & path, const base_info & base, const std::map<std::string, std::string> & structure,
                             checkpoint_state & state) {
    ggml_context * raw = nullptr;
    gguf_init_params params = { /*no_alloc =*/ false, /*ctx =*/ &raw };
    std::unique_ptr<gguf_context, gguf_deleter> g(gguf_init_from_file(path.c_str(), params));
    std::unique_ptr<ggml_context, ggml_deleter> ctx(raw);
    auto find = [&](const char * key, gguf_type type) -> int64_t {
        const int64_t id = g ? gguf_find_key(g.get(), key) : -1;
        if (id < 0 || gguf_get_kv_type(g.get(), id) != type) {
            throw input_error(path + ": not an autoact checkpoint (missing " + key + "); delete it to start over");
        }
        return id;
    };
    if (!g || std::string(gguf_get_val_str(g.get(), find("general.type", GGUF_TYPE_STRING))) != "autoact.checkpoint") {
        throw input_error(path + ": not an autoact checkpoint; delete it to start over");
    }
    const std::string arch = gguf_get_val_str(g.get(), find("general.architecture", GGUF_TYPE_STRING));
    if (arch != base.arch) {
        throw input_error(path + ": the checkpoint is for architecture '" + arch + "', the base model is '" + base.arch + "'");
    }
    // settings that joined the structure later, as a checkpoint written before them has them
    const std::map<std::string, std::string> added_later = { { "start", "fresh" } };
    for (const auto & [key, value] : structure) {
        const auto later = added_later.find(key);
        const bool absent = later != added_later.end() && gguf_find_key(g.get(), (k_prefix + key).c_str()) < 0;
        const std::string stored = absent ? later->second : gguf_get_val_str(g.get(), find((k_prefix + key).c_str(), GGUF_TYPE_STRING));
        if (stored != value) {
            // a hash says nothing to a reader: say what it is of
            const bool hashed = key.size() > 6 && key.compare(key.size() - 6, 6, "_fnv1a") == 0;
            const std::string what = !hashed ? key + "=" + stored + ", this run has " + key + "=" + value
                                   : key == "data_fnv1a" ? "other training data than this run's" : "other target tensors than this run's";
            throw input_error(path + ": the checkpoint was made with " + what +
                              " (use the same settings, or delete the checkpoint to start over)");
        }
    }
    state.structure = structure;
    state.step      = (int64_t) gguf_get_val_u64(g.get(), find("autoact.ckpt.step", GGUF_TYPE_UINT64));
    state.elapsed_s = gguf_get_val_f64(g.get(), find("autoact.ckpt.elapsed_s", GGUF_TYPE_FLOAT64));
    state.tokens    = (int64_t) gguf_get_val_u64(g.get(), find("autoact.ckpt.tokens", GGUF_TYPE_UINT64));
    // the losses came later: a checkpoint written before them has none to report
    for (auto [key, value] : { std::pair{ "autoact.ckpt.first_loss", &state.first_loss }, std::pair{ "autoact.ckpt.last_loss", &state.last_loss } }) {
        const int64_t id = gguf_find_key(g.get(), key);
        *value = id >= 0 && gguf_get_kv_type(g.get(), id) == GGUF_TYPE_FLOAT64 ? gguf_get_val_f64(g.get(), id) : NAN;
    }

    lora_adapter a;
    a.arch  = arch;
    a.alpha = gguf_get_val_f32(g.get(), find("adapter.lora.alpha", GGUF_TYPE_FLOAT32));
    a.rank  = (int32_t) gguf_get_val_u32(g.get(), find("adapter.lora.rank", GGUF_TYPE_UINT32));
    for (int64_t i = 0; i < gguf_get_n_tensors(g.get()); ++i) {
        const std::string name = gguf_get_tensor_name(g.get(), i);
        if (name.size() > 7 && (name.compare(name.size() - 7, 7, ".adam_m") == 0 || name.compare(name.size() - 7, 7, ".adam_v") == 0)) {
            continue;
        }
        lora_tensor t;
        t.name = name;
        const ggml_tensor * value = ggml_get_tensor(ctx.get(), name.c_str());
        const ggml_tensor * m     = ggml_get_tensor(ctx.get(), (name + ".adam_m").c_str());
        const ggml_tensor * v     = ggml_get_tensor(ctx.get(), (name + ".adam_v").c_str());
        if (!m || !v || value->type != GGML_TYPE_F32) {
            throw input_error(path + ": tensor " + name + " lacks its AdamW moments; delete the checkpoint to start over");
        }
        const std::string w = name.substr(0, name.size() - 7);
        if (!base.tensor_ne.count(w)) {
            throw input_error(path + ": tensor " + name + " does not fit the base model");
        }
        t.ne0 = value->ne[0];
        t.ne1 = value->ne[1];
        const size_t n = (size_t) (t.ne0 * t.ne1);
        t.value.assign((const float *) value->data, (const float *) value->data + n);
        t.m.assign((const float *) m->data, (const float *) m->data + n);
        t.v.assign((const float *) v->data, (const float *) v->data + n);
        a.tensors.push_back(std::move(t));
    }
    std::sort(a.tensors.begin(), a.tensors.end(), [](const lora_tensor & x, const lora_tensor & y) { return x.name < y.name; });
    return a;
}
