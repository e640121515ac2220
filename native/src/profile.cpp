#include "profile.h"
#include "common.h"

#include "ggml.h"

#include <algorithm>
#include <cstdio>
#include <vector>

namespace {

// "grad for kq-12 (transposed)" -> "grad for kq (transposed)"; "node_318" -> ""
std::string name_stem(const char * name) {
    std::string out;
    for (const char * c = name; *c; ++c) {
        if (*c == '-' && c[1] >= '0' && c[1] <= '9') {
            while (c[1] >= '0' && c[1] <= '9') {
                ++c;
            }
            continue;
        }
        out += *c;
    }
    return out.rfind("node_", 0) == 0 || out.rfind("leaf_", 0) == 0 ? std::string() : out;
}

} // namespace

bool profile_eval(ggml_tensor * t, bool ask, void * ud) {
    auto & p = *static_cast<op_profile *>(ud);
    if (ask) {
        return p.active; // observe every node while profiling: one node per compute call
    }
    const double now = now_s();
    std::string key = ggml_op_desc(t);
    if (t->src[0]) {
        key += std::string(" ") + ggml_type_name(t->src[0]->type);
    }
    const std::string stem = name_stem(t->name);
    if (!stem.empty()) {
        key += " " + stem;
    }
    auto & e = p.by_node[key];
    e.count++;
    e.seconds += now - p.last;
    p.last = now;
    return true;
}

void profile_pass_begin(op_profile & p) {
    p.last = now_s();
    p.passes++;
}

void profile_report(const op_profile & p, int top) {
    std::vector<std::pair<std::string, op_profile::entry>> rows(p.by_node.begin(), p.by_node.end());
    std::sort(rows.begin(), rows.end(), [](const auto & a, const auto & b) { return a.second.seconds > b.second.seconds; });
    double total = 0.0;
    for (const auto & r : rows) {
        total += r.second.seconds;
    }
    const int passes = std::max(1, p.passes);
    fprintf(stderr, "profile: %d passes, %.1f ms per pass (node by node)\n", p.passes, 1e3 * total / passes);
    std::string list;
    for (int i = 0; i < (int) rows.size() && i < top; ++i) {
        const auto & [key, e] = rows[i];
        fprintf(stderr, "  %5.1f%%  %8.2f ms/pass  %5lld x  %s\n", 100.0 * e.seconds / total, 1e3 * e.seconds / passes, (long long) e.count, key.c_str());
        list += (i ? "," : "") + json_line().str("node", key).integer("count", e.count).num("ms_per_pass", 1e3 * e.seconds / passes)
            .num("share", e.seconds / total).text();
    }
    json_line().str("event", "profile").integer("passes", p.passes).num("ms_per_pass", 1e3 * total / passes).raw("top", "[" + list + "]").emit();
}
