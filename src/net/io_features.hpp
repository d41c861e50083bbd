#pragma once
// Which io_uring fast paths the I/O layer uses on a loop (for tests and
// diagnostics). CORIO_IO_FALLBACK=1 in the environment, read when a loop first
// does socket I/O, turns both off so that the plain paths can be exercised.

namespace corio {
class event_loop;
}

namespace corio::detail {

struct io_features {
    bool multishot_accept = false; ///< one multishot IORING_OP_ACCEPT per listener
    bool buffer_receive = false;   ///< multishot IORING_OP_RECV into a provided-buffer ring
};

/// The fast paths in use on `loop` (sets the buffer ring up if it was not yet).
io_features io_features_of(event_loop& loop);

} // namespace corio::detail
