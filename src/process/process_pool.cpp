// process_backend's members: the process pool's core behind basic_pool.

#include "pool/backend_core.hpp"
#include "process/pool_core.hpp"

namespace corio::detail {

template class backend_core<process_pool_core>;

std::atomic<std::uint64_t> direct_send_count{0};

std::atomic<std::int64_t> direct_offer_count{0};

std::uint64_t process_pool_direct_sends() noexcept {
    return direct_send_count.load(std::memory_order_relaxed);
}

std::size_t process_pool_open_offers() noexcept {
    return static_cast<std::size_t>(direct_offer_count.load(std::memory_order_acquire));
}

process_backend::process_backend(std::size_t workers, pool_options options)
    : backend_core(std::make_unique<process_pool_core>(workers, std::move(options))),
      workers_(workers) {}

process_backend::~process_backend() = default;

std::vector<pid_t> process_backend::pids() const {
    return core_->pids();
}

void process_backend::submit(process_batch batch) {
    core_->submit(*batch.job, batch.chunks);
}

const map_progress::progress_fn* process_backend::progress() const noexcept {
    return core_->progress();
}

} // namespace corio::detail
