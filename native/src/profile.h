#pragma once
// --profile: where a training pass spends its time, node by node. The scheduler's eval callback
// makes it compute the graph one node at a time and synchronize after each (slower than a real
// run, so the figures are shares, not speeds); the time since the previous node goes to this
// node's op and name, with the layer number dropped ("MUL_MAT grad for kq").

#include <map>
#include <string>

struct ggml_tensor;

struct op_profile {
    bool   active = false;  // measuring (off during the warm-up step)
    double last   = 0.0;    // when the previous node finished, in seconds
    int    passes = 0;
    struct entry { int64_t count = 0; double seconds = 0.0; };
    std::map<std::string, entry> by_node;
};

// the llama_context_params.cb_eval callback; user data: the op_profile
bool profile_eval(ggml_tensor * t, bool ask, void * ud);

// the clock restarts at the start of each profiled pass
void profile_pass_begin(op_profile & p);

// one JSON line ({"event":"profile",...}: the top entries by time) and a table on stderr
void profile_report(const op_profile & p, int top);
