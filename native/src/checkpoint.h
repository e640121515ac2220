// Checkpoints: one GGUF file holding the adapter's values, its AdamW moments, the step and the
// run's structural settings. Written to a temporary name and renamed, so a checkpoint on disk
// is always complete. The data order needs no state: it is a function of (seed, sample count).
#pragma once

#include "adapter.h"

#include <cmath>
#include <map>
#include <string>

struct checkpoint_state {
    int64_t                            step = 0;        // optimizer steps done
    double                             elapsed_s = 0.0; // training time before this process
    int64_t                            tokens = 0;      // tokens trained before this process
    double                             first_loss = NAN; // step 1's loss (a resumed run reports it too)
    double                             last_loss = NAN;  // the loss of the step checkpointed
    std::map<std::string, std::string> structure;       // settings a resume must share
};

void checkpoint_save(const std::string & path, const lora_adapter & adapter, const checkpoint_state & state);

// Reads a checkpoint; throws input_error if it does not fit `base` or differs from `structure`
// in a structural setting (naming it).
lora_adapter checkpoint_load(const std::string & path, const base_info & base, const std::map<std::string, std::string> & structure,
                             checkpoint_state & state);
