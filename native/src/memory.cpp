#include "memory.h"

#include <algorithm>
#include <fstream>
#include <string>

#ifdef __APPLE__
#include <mach/mach.h>
#else
#include <sys/resource.h>
#include <unistd.h>
#endif

namespace {

// The least of the bounds that are known (0: unknown).
uint64_t least_known(uint64_t a, uint64_t b) {
    return a == 0 ? b : b == 0 ? a : std::min(a, b);
}

// A number from a one-line file (cgroup limits); 0 where absent or unlimited ("max", or v1's ~2^63).
uint64_t read_limit(const std::string & path) {
    std::ifstream in(path);
    std::string word;
    if (!(in >> word) || word == "max") {
        return 0;
    }
    try {
        const unsigned long long v = std::stoull(word);
        return v >= (1ull << 62) ? 0 : v;
    } catch (...) {
        return 0;
    }
}

// What the cgroups this process is in leave it: the least of limit - usage over its cgroup and
// its parents (v2: memory.max / memory.current; v1: the memory controller's limit and usage).
uint64_t cgroup_headroom() {
    uint64_t least = 0;
    // root: the hierarchy's mount; rel: the cgroup's path in it ("/a/b": /a/b, then /a, then the root)
    auto consider = [&](const std::string & root, const std::string & rel, const char * limit_file, const char * usage_file) {
        for (std::string r = rel;; r = r.substr(0, r.rfind('/'))) {
            const uint64_t limit = read_limit(root + r + "/" + limit_file);
            if (limit > 0) {
                const uint64_t usage = read_limit(root + r + "/" + usage_file);
                const uint64_t room  = limit > usage ? limit - usage : 1;
                least = least_known(least, room);
            }
            if (r.empty()) {
                break;
            }
        }
    };
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line)) {
        // "<id>:<controllers>:<path>"; v2's is "0::<path>"
        const size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
        if (b == std::string::npos) {
            continue;
        }
        const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
        const std::string rel = path == "/" ? "" : path;
        if (controllers.empty()) {
            consider("/sys/fs/cgroup", rel, "memory.max", "memory.current");
        } else if (("," + controllers + ",").find(",memory,") != std::string::npos) {
            consider("/sys/fs/cgroup/memory", rel, "memory.limit_in_bytes", "memory.usage_in_bytes");
        }
    }
    return least;
}

#ifndef __APPLE__
// What an address-space limit (ulimit -v) leaves this process: the limit less the address space
// it holds now; 0 where there is no limit. Beyond it allocations fail, whatever the memory free.
uint64_t address_space_headroom() {
    rlimit lim {};
    if (getrlimit(RLIMIT_AS, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) {
        return 0;
    }
    std::ifstream statm("/proc/self/statm");
    uint64_t pages = 0;
    statm >> pages; // the first field: the address space's size in pages
    const uint64_t held = pages * (uint64_t) sysconf(_SC_PAGESIZE);
    return (uint64_t) lim.rlim_cur > held ? (uint64_t) lim.rlim_cur - held : 1;
}
#endif

} // namespace

uint64_t available_memory_bytes() {
#ifdef __APPLE__
    vm_statistics64_data_t vm {};
    mach_msg_type_number_t count = HOST_VM_INFO64_COUNT;
    if (host_statistics64(mach_host_self(), HOST_VM_INFO64, (host_info64_t) &vm, &count) != KERN_SUCCESS) {
        return 0;
    }
    return ((uint64_t) vm.free_count + vm.inactive_count + vm.purgeable_count) * (uint64_t) vm_kernel_page_size;
#else
    uint64_t available = 0;
    std::ifstream in("/proc/meminfo");
    std::string key;
    uint64_t kib = 0;
    std::string unit;
    while (in >> key >> kib) {
        std::getline(in, unit);
        if (key == "MemAvailable:") {
            available = kib * 1024u;
            break;
        }
    }
    return least_known(least_known(available, cgroup_headroom()), address_space_headroom());
#endif
}

uint64_t resident_bytes() {
#ifdef __APPLE__
    mach_task_basic_info_data_t info {};
    mach_msg_type_number_t count = MACH_TASK_BASIC_INFO_COUNT;
    if (task_info(mach_task_self(), MACH_TASK_BASIC_INFO, (task_info_t) &info, &count) != KERN_SUCCESS) {
        return 0;
    }
    return (uint64_t) info.resident_size;
#else
    std::ifstream statm("/proc/self/statm");
    uint64_t size = 0, resident = 0;
    statm >> size >> resident; // in pages
    return resident * (uint64_t) sysconf(_SC_PAGESIZE);
#endif
}
