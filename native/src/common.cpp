#include "common.h"

#include <chrono>
#include <cmath>
#include <cstdarg>
#include <fstream>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

std::string string_format(const char * fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    const int n = vsnprintf(nullptr, 0, fmt, ap);
    std::string out(n > 0 ? n : 0, '\0');
    if (n > 0) {
        vsnprintf(out.data(), n + 1, fmt, ap2);
    }
    va_end(ap2);
    va_end(ap);
    return out;
}

std::string json_line::quote(const std::string & s) {
    std::string out = "\"";
    for (const unsigned char c : s) {
        switch (c) {
            case '"':  out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n";  break;
            case '\r': out += "\\r";  break;
            case '\t': out += "\\t";  break;
            default:
                if (c < 0x20) {
                    out += string_format("\\u%04x", c);
                } else {
                    out += (char) c;
                }
        }
    }
    return out + "\"";
}

void json_line::key(const char * k) {
    if (!body.empty()) {
        body += ",";
    }
    body += quote(k) + ":";
}

json_line & json_line::str(const char * k, const std::string & value) { key(k); body += quote(value); return *this; }
json_line & json_line::integer(const char * k, int64_t value) { key(k); body += std::to_string(value); return *this; }
json_line & json_line::boolean(const char * k, bool value) { key(k); body += value ? "true" : "false"; return *this; }
json_line & json_line::null(const char * k) { key(k); body += "null"; return *this; }
json_line & json_line::raw(const char * k, const std::string & json) { key(k); body += json; return *this; }

json_line & json_line::strings(const char * k, const std::vector<std::string> & values) {
    key(k);
    body += "[";
    for (size_t i = 0; i < values.size(); ++i) {
        body += (i ? "," : "") + quote(values[i]);
    }
    body += "]";
    return *this;
}

json_line & json_line::num(const char * k, double value) {
    key(k);
    body += std::isfinite(value) ? string_format("%.9g", value) : "null";
    return *this;
}

void json_line::emit() const {
    const std::string line = text() + "\n";
    fwrite(line.data(), 1, line.size(), stdout);
    fflush(stdout);
}

uint64_t peak_rss_bytes() {
    struct rusage usage {};
    if (getrusage(RUSAGE_SELF, &usage) != 0) {
        return 0;
    }
#ifdef __APPLE__
    return (uint64_t) usage.ru_maxrss;          // bytes on macOS
#else
    return (uint64_t) usage.ru_maxrss * 1024u;  // KiB on Linux
#endif
}

uint64_t fnv1a(const void * data, size_t n, uint64_t h) {
    for (size_t i = 0; i < n; ++i) {
        h ^= ((const uint8_t *) data)[i];
        h *= 1099511628211ull;
    }
    return h;
}

uint64_t file_fnv1a(const std::string & path) {
    std::ifstream in(path, std::ios::binary);
    uint64_t h = fnv1a_basis;
    std::vector<char> buf(1 << 16);
    while (in) {
        in.read(buf.data(), (std::streamsize) buf.size());
        h = fnv1a(buf.data(), (size_t) in.gcount(), h);
    }
    return h;
}

uint64_t string_fnv1a(const std::string & s) {
    return fnv1a(s.data(), s.size());
}

bool file_exists(const std::string & path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

uint64_t file_size(const std::string & path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 ? (uint64_t) st.st_size : 0;
}

std::string join_list(const std::vector<std::string> & items) {
    std::string out;
    for (const auto & s : items) {
        out += (out.empty() ? "" : ",") + s;
    }
    return out;
}

void write_atomically(const std::string & path, const std::function<void(const std::string &)> & write) {
    const std::string tmp = path + string_format(".%d.tmp", (int) getpid());
    try {
        write(tmp);
    } catch (...) {
        unlink(tmp.c_str());
        throw;
    }
    if (rename(tmp.c_str(), path.c_str()) != 0) {
        unlink(tmp.c_str());
        throw runtime_failure("cannot rename " + tmp + " to " + path);
    }
}

double now_s() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}
