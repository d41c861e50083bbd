#pragma once
// Definitions of detail::backend_core (include/corio/detail/backend_core.hpp); a
// backend's source file includes this after its core's class and instantiates
// `template class backend_core<its_core>;`.

#include <corio/detail/backend_core.hpp>

#include <memory>
#include <utility>

namespace corio::detail {

template <class Core>
backend_core<Core>::backend_core(std::unique_ptr<Core> core) noexcept : core_(std::move(core)) {}

template <class Core>
backend_core<Core>::~backend_core() = default;

template <class Core>
void backend_core<Core>::check_running() const {
    core_->check_running();
}

template <class Core>
void backend_core<Core>::close() noexcept {
    core_->close();
}

template <class Core>
void backend_core<Core>::terminate() noexcept {
    core_->terminate();
}

template <class Core>
void backend_core<Core>::join() {
    core_->join();
}

template <class Core>
bool backend_core<Core>::on_pool_thread() const noexcept {
    return core_->on_own_thread();
}

} // namespace corio::detail
