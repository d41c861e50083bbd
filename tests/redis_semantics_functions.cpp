// The functions of tests/pool_semantics.hpp under their names, registered in the Redis
// pool tests and in their worker program (tests/redis_test_worker.cpp), so that
// redis_pool_test.cpp runs the Pool semantics every corio pool shares.

#include "pool_semantics.hpp"

#include <corio/redis_pool.hpp>

CORIO_REMOTE(pool_semantics::square);
CORIO_REMOTE(pool_semantics::add);
CORIO_REMOTE(pool_semantics::fail_on_odd);
CORIO_REMOTE(pool_semantics::always_fail);
CORIO_REMOTE(pool_semantics::repeat);
CORIO_REMOTE(pool_semantics::identity);
CORIO_REMOTE(pool_semantics::nothing);
CORIO_REMOTE(pool_semantics::gated_square);
CORIO_REMOTE(pool_semantics::first_fails_second_waits);
CORIO_REMOTE(pool_semantics::square_holding_back_zero);
