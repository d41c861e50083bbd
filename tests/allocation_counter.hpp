#pragma once
// Replaces the global operator new and delete with versions that count the bytes
// allocated (`bytes_allocated`), so that tests of large payloads count copies
// instead of timing them. Include it from exactly one source file of a test program
// (replacement allocation functions are defined once per program); a program's
// forked workers count on their own.
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace {
std::atomic<std::size_t> bytes_allocated{0};
} // namespace

// Not under ThreadSanitizer: libstdc++ is not instrumented, and its reports of
// exception objects released on another thread (see tests/test_main.cpp) must keep
// the sanitizer's own allocation frames to match their suppression.
#if defined(__SANITIZE_THREAD__)
#define CORIO_TEST_COUNTS_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CORIO_TEST_COUNTS_ALLOCATIONS 0
#endif
#endif
#ifndef CORIO_TEST_COUNTS_ALLOCATIONS
#define CORIO_TEST_COUNTS_ALLOCATIONS 1
#endif

#if CORIO_TEST_COUNTS_ALLOCATIONS
// Out of line, so that g++ does not see free() called on what operator new returned
// (-Wmismatched-new-delete) once it inlines them.
[[gnu::noinline]] void* operator new(std::size_t n) {
    bytes_allocated.fetch_add(n, std::memory_order_relaxed);
    if (void* p = std::malloc(n == 0 ? 1 : n)) {
        return p;
    }
    throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](std::size_t n) {
    return ::operator new(n);
}
[[gnu::noinline]] void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    bytes_allocated.fetch_add(n, std::memory_order_relaxed);
    return std::malloc(n == 0 ? 1 : n);
}
[[gnu::noinline]] void* operator new[](std::size_t n, const std::nothrow_t& tag) noexcept {
    return ::operator new(n, tag);
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
    std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p) noexcept {
    std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept {
    std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
#endif
