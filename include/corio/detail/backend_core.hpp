#pragma once
// The lifecycle members of a pool backend (see basic_pool.hpp), written once: a
// backend owns a core, a class of src/ that owns its threads, and forwards to it.
// The members are defined in src/pool/backend_core.hpp and instantiated for each core
// in its backend's source file (the core's type is complete only there).

#include <memory>

namespace corio::detail {

/// The part of a pool backend that forwards the lifecycle to its `Core`.
/// **Thread safety:** as basic_pool's.
template <class Core>
class backend_core {
public:
    /// Throws `pool_not_running` after close() / terminate() (or the core's own error).
    void check_running() const;
    /// Stops accepting work.
    void close() noexcept;
    /// Stops at once; unfinished results get `pool_terminated`.
    void terminate() noexcept;
    /// Waits for the core's threads; throws `invalid_state_error` while running.
    void join();
    /// True on one of the core's own threads (a worker, the result thread).
    bool on_pool_thread() const noexcept;

protected:
    explicit backend_core(std::unique_ptr<Core> core) noexcept;
    ~backend_core();
    backend_core(const backend_core&) = delete;
    backend_core& operator=(const backend_core&) = delete;

    std::unique_ptr<Core> core_;
};

} // namespace corio::detail
