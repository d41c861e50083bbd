// process_pool's public methods: a thin handle on detail::process_pool_core.

#include "process/pool_core.hpp"

namespace corio {

process_pool::process_pool(std::size_t workers, pool_options options)
    : core_(std::make_unique<detail::process_pool_core>(workers, std::move(options))),
      workers_(workers) {}

process_pool::~process_pool() {
    if (core_) {
        core_->close();
        try {
            core_->join();
        } catch (...) {
            // join() from a callback: terminate (the core's destructor) rather than hang.
        }
    }
}

std::vector<pid_t> process_pool::worker_pids() const {
    return core_->pids();
}

void process_pool::submit_(detail::process_job& job, std::size_t chunks) {
    core_->submit(job, chunks);
}

void process_pool::check_running_() const {
    core_->check_running();
}

const std::function<void(std::size_t, std::size_t)>* process_pool::progress_() const noexcept {
    return core_->progress();
}

void process_pool::close() noexcept {
    core_->close();
}

void process_pool::terminate() noexcept {
    core_->terminate();
}

void process_pool::join() {
    core_->join();
}

} // namespace corio
