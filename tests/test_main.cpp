#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#if defined(__SANITIZE_THREAD__)
// libstdc++ is not instrumented, so ThreadSanitizer does not see the atomic reference
// count of an exception object shared through std::exception_ptr: when a caller reads
// a rethrown exception and a pool thread later drops the last reference to the result
// that stored it, the exception's destructor (reached from exception_ptr's release)
// looks like a race with the read (with the release inlined into the destructor of a
// standard exception, only that destructor shows on the stack). The programs are
// correct: the reader's in-flight exception holds a reference until its handler ends.
extern "C" const char* __tsan_default_suppressions() {
    return "race:std::__exception_ptr::exception_ptr::_M_release\n"
           "race:std::runtime_error::~runtime_error\n"
           "race:std::logic_error::~logic_error\n";
}
#endif
