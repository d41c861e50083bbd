#pragma once
// IORING_OP_NOP awaited through the op interface: the smallest real io_uring round
// trip, used by tests and the H6 loop-overhead benchmark.

#include <corio/detail/uring_op.hpp>

namespace corio::detail {

void prep_nop(uring_op& op, ::io_uring_sqe& sqe) noexcept;

/// `co_await nop()` submits a NOP and resumes when its completion arrives (returns res).
class nop_awaitable : public op_awaitable {
public:
    nop_awaitable() : op_awaitable(&prep_nop) {}
};

[[nodiscard]] inline nop_awaitable nop() {
    return nop_awaitable();
}

} // namespace corio::detail
