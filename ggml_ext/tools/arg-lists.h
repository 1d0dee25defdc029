// Comma-separated list arguments shared by veclut's test and benchmark programs.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace veclut_args {

template <typename T, typename F>
std::vector<T> split(const std::string & s, F parse) {
    std::vector<T> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        if (!item.empty()) {
            out.push_back(parse(item));
        }
    }
    return out;
}

inline std::vector<std::string> strings(const std::string & s) {
    return split<std::string>(s, [](const std::string & x) { return x; });
}

inline std::vector<int64_t> int64s(const std::string & s) {
    return split<int64_t>(s, [](const std::string & x) { return std::stoll(x); });
}

inline std::vector<int> ints(const std::string & s) {
    return split<int>(s, [](const std::string & x) { return std::stoi(x); });
}

// "MxK,MxK": rows x row length; an item without 'x' yields {-1, -1} for the caller to reject
inline std::vector<std::pair<int64_t, int64_t>> shapes(const std::string & s) {
    return split<std::pair<int64_t, int64_t>>(s, [](const std::string & x) {
        const auto at = x.find('x');
        if (at == std::string::npos) {
            return std::pair<int64_t, int64_t>(-1, -1);
        }
        return std::pair<int64_t, int64_t>(std::stoll(x.substr(0, at)), std::stoll(x.substr(at + 1)));
    });
}

}  // namespace veclut_args
