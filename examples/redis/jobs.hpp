#pragma once
// The functions the Redis examples send to their workers. Both the client programs and
// the worker program include this header, so each registers them under the same names
// (CORIO_REMOTE at static initialization).

#include <corio/redis_pool.hpp>

#include <sstream>
#include <stdexcept>
#include <string>

namespace jobs {

inline int square(int x) {
    return x * x;
}

/// RQ's classic first job, without the network: how many words a text has.
inline std::size_t count_words(std::string text) {
    std::istringstream in(text);
    std::size_t n = 0;
    for (std::string w; in >> w;) {
        ++n;
    }
    return n;
}

inline double checked_sqrt(double x) {
    if (x < 0) {
        throw std::domain_error("sqrt of a negative number: " + std::to_string(x));
    }
    double r = x;
    for (int i = 0; i < 50 && r > 0; ++i) {
        r = 0.5 * (r + x / r);
    }
    return r;
}

} // namespace jobs

CORIO_REMOTE(jobs::square);
CORIO_REMOTE(jobs::count_words);
CORIO_REMOTE(jobs::checked_sqrt);
