// Catch2's implementation without a main(), for the helper programs that are not
// tests but include a test header: redis_test_worker registers the functions of
// pool_semantics.hpp, whose coroutines use CHECK. g++ may emit those inline
// coroutines in unoptimised builds (AddressSanitizer), and they then need Catch2's
// symbols at link time; they are never called there.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
