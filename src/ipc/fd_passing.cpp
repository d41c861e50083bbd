// Descriptors passed with a corio::process's arguments (see detail/fd_passing.hpp).
#include <corio/detail/fd_passing.hpp>
#include <corio/serialize.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <fcntl.h>
#include <system_error>
#include <unistd.h>

namespace corio::detail {

namespace {
thread_local outgoing_fds* current_outgoing = nullptr;
thread_local incoming_fds* current_incoming = nullptr;
} // namespace

void close_all(std::vector<int>& fds) noexcept {
    for (const int fd : fds) {
        if (fd >= 0) {
            ::close(fd);
        }
    }
    fds.clear();
}

outgoing_fds::outgoing_fds() noexcept : previous_(current_outgoing) {
    current_outgoing = this;
}

outgoing_fds::~outgoing_fds() {
    current_outgoing = previous_;
    close_all(fds_);
}

std::vector<int> outgoing_fds::take() noexcept {
    return std::move(fds_);
}

std::uint32_t pass_fd(int fd, const char* what) {
    outgoing_fds* out = current_outgoing;
    if (out == nullptr) {
        throw error(fmt::format("corio: {} can cross a process boundary only as an argument of "
                                "corio::process (a process pool or a pipe cannot carry it)",
                                what));
    }
    if (fd < 0) {
        throw error(fmt::format("corio: {} is closed and cannot be passed to a process", what));
    }
    // SCM_RIGHTS carries at most 253 descriptors in one message.
    if (out->fds_.size() >= 250) {
        throw error("corio::process: more than 250 descriptors among the arguments");
    }
    const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) {
        throw std::system_error(errno, std::generic_category(),
                                "corio: dup of a passed descriptor");
    }
    out->fds_.push_back(copy);
    return static_cast<std::uint32_t>(out->fds_.size() - 1);
}

incoming_fds::incoming_fds(std::vector<int> fds) noexcept
    : fds_(std::move(fds)), previous_(current_incoming) {
    current_incoming = this;
}

incoming_fds::~incoming_fds() {
    current_incoming = previous_;
    close_all(fds_);
}

int receive_fd(std::uint32_t index) {
    incoming_fds* in = current_incoming;
    if (in == nullptr || index >= in->fds_.size() || in->fds_[index] < 0) {
        throw serialize_error("corio: a passed descriptor is missing (decoded outside a process "
                              "start, or decoded twice)");
    }
    const int fd = in->fds_[index];
    in->fds_[index] = -1;
    return fd;
}

} // namespace corio::detail
