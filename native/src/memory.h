// How much memory the machine can still give this process: the trainer plans its weight copies with it.
#pragma once

#include <cstdint>

// Bytes this process can still take (0 where unknown): Linux's MemAvailable, or less where a
// cgroup (a container, a systemd slice) or an address-space limit (ulimit -v) leaves this process
// less; macOS's free, inactive and purgeable pages.
uint64_t available_memory_bytes();

// This process's resident memory in bytes now (0 where unknown): what it has touched of what it
// allocated and mapped.
uint64_t resident_bytes();
