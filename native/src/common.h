// Shared pieces of autoact-train: user-facing errors and the JSON-lines writer.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

// Bad input (a missing file, a wrong flag, an unusable dataset): exit code 2.
struct input_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The environment or the math failed (out of memory, NaN loss): exit code 1 (3 for NaN).
struct runtime_failure : std::runtime_error {
    int exit_code;
    explicit runtime_failure(const std::string & msg, int code = 1) : std::runtime_error(msg), exit_code(code) {}
};

std::string string_format(const char * fmt, ...);

// One JSON object on one line of stdout. Values are added in order; call emit() once.
class json_line {
public:
    json_line & str(const char * key, const std::string & value);
    json_line & num(const char * key, double value); // non-finite numbers are written as null
    json_line & integer(const char * key, int64_t value);
    json_line & boolean(const char * key, bool value);
    json_line & null(const char * key);
    json_line & raw(const char * key, const std::string & json); // already-encoded JSON
    json_line & strings(const char * key, const std::vector<std::string> & values); // a list of strings
    std::string text() const { return "{" + body + "}"; }
    void emit() const; // writes and flushes stdout

    static std::string quote(const std::string & s);

private:
    void key(const char * k);
    std::string body;
};

// Peak resident set size of this process in bytes (0 where unknown).
uint64_t peak_rss_bytes();

// 64-bit FNV-1a: of n bytes, continuing from h (the offset basis to start); of a file's bytes
// (identifies the dataset a checkpoint was made with); of a string.
constexpr uint64_t fnv1a_basis = 1469598103934665603ull;
uint64_t fnv1a(const void * data, size_t n, uint64_t h = fnv1a_basis);
uint64_t file_fnv1a(const std::string & path);
uint64_t string_fnv1a(const std::string & s);

// Seconds on a steady clock (differences only).
double now_s();

bool file_exists(const std::string & path);
uint64_t file_size(const std::string & path); // 0 where it cannot be read

// "a,b,c"
std::string join_list(const std::vector<std::string> & items);

// Writes with `write(tmp)` to a temporary name beside `path`, then renames it over `path`.
void write_atomically(const std::string & path, const std::function<void(const std::string &)> & write);
