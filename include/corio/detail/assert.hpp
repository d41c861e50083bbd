#pragma once
// Programming errors (awaiting a moved-from task, awaiting twice) are assertions
// with a clear message, active in every build type: they must not become UB.

#include <cstdio>
#include <cstdlib>

#define CORIO_ASSERT(cond, msg)                                                                    \
    do {                                                                                           \
        if (!(cond)) [[unlikely]] {                                                                \
            std::fprintf(stderr, "corio: %s (%s:%d)\n", msg, __FILE__, __LINE__);                  \
            std::abort();                                                                          \
        }                                                                                          \
    } while (false)
