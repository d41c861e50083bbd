// corio::shared_memory: named blocks (shm_open in /dev/shm) and anonymous ones
// (memfd), both kept open so that they can be passed to a corio::process.
#include <corio/detail/fd_passing.hpp>
#include <corio/ipc.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>

namespace corio {

namespace {

[[noreturn]] void throw_errno(const char* what, int e) {
    throw std::system_error(e, std::generic_category(), what);
}

std::string shm_path(std::string_view name) {
    if (name.empty() || name.size() > 200) {
        throw error("corio::shared_memory: a name must have 1 to 200 characters");
    }
    if (name.find('/') != std::string_view::npos) {
        throw error(fmt::format("corio::shared_memory: the name \"{}\" contains '/' (names carry "
                                "no leading slash)",
                                name));
    }
    return "/" + std::string(name);
}

} // namespace

shared_memory::shared_memory(int fd, std::string name) : fd_(fd), name_(std::move(name)) {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
        const int e = errno;
        ::close(fd_);
        fd_ = -1;
        throw_errno("corio::shared_memory: fstat", e);
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ == 0) {
        ::close(fd_);
        fd_ = -1;
        throw error("corio::shared_memory: the block has size 0");
    }
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) {
        const int e = errno;
        ::close(fd_);
        fd_ = -1;
        throw_errno("corio::shared_memory: mmap", e);
    }
    data_ = static_cast<std::byte*>(p);
}

shared_memory::shared_memory(std::size_t size) {
    if (size == 0) {
        throw error("corio::shared_memory: size 0");
    }
    const int fd = ::memfd_create("corio-shared-memory", MFD_CLOEXEC);
    if (fd < 0) {
        throw_errno("corio::shared_memory: memfd_create", errno);
    }
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
        const int e = errno;
        ::close(fd);
        throw_errno("corio::shared_memory: ftruncate", e);
    }
    *this = shared_memory(fd, {});
}

shared_memory shared_memory::create(std::string_view name, std::size_t size) {
    if (size == 0) {
        throw error("corio::shared_memory::create: size 0");
    }
    const std::string path = shm_path(name);
    const int fd = ::shm_open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        throw std::system_error(errno, std::generic_category(),
                                fmt::format("corio::shared_memory::create(\"{}\")", name));
    }
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
        const int e = errno;
        ::close(fd);
        ::shm_unlink(path.c_str());
        throw_errno("corio::shared_memory::create: ftruncate", e);
    }
    return shared_memory(fd, std::string(name));
}

shared_memory shared_memory::attach(std::string_view name) {
    const std::string path = shm_path(name);
    const int fd = ::shm_open(path.c_str(), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
        throw std::system_error(errno, std::generic_category(),
                                fmt::format("corio::shared_memory::attach(\"{}\")", name));
    }
    return shared_memory(fd, std::string(name));
}

shared_memory::shared_memory(shared_memory&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)), name_(std::move(o.name_)) {}

shared_memory& shared_memory::operator=(shared_memory&& o) noexcept {
    if (this != &o) {
        close();
        fd_ = std::exchange(o.fd_, -1);
        data_ = std::exchange(o.data_, nullptr);
        size_ = std::exchange(o.size_, 0);
        name_ = std::move(o.name_);
    }
    return *this;
}

shared_memory::~shared_memory() {
    close();
}

void shared_memory::close() noexcept {
    if (data_ != nullptr) {
        ::munmap(data_, size_);
    }
    if (fd_ >= 0) {
        ::close(fd_);
    }
    data_ = nullptr;
    fd_ = -1;
    size_ = 0;
}

void shared_memory::unlink() {
    if (name_.empty()) {
        throw error("corio::shared_memory::unlink: anonymous memory has no name");
    }
    const std::string path = shm_path(name_);
    if (::shm_unlink(path.c_str()) != 0) {
        throw std::system_error(errno, std::generic_category(),
                                fmt::format("corio::shared_memory::unlink(\"{}\")", name_));
    }
}

void shared_memory::write_to(byte_writer& w) const {
    w.write_raw(detail::pass_fd(fd_, "corio::shared_memory"));
    serialize(w, name_);
}

shared_memory shared_memory::read_from(byte_reader& r) {
    const int fd = detail::receive_fd(r.read_raw<std::uint32_t>());
    std::string name;
    try {
        name = deserialize<std::string>(r);
    } catch (...) {
        ::close(fd);
        throw;
    }
    return shared_memory(fd, std::move(name));
}

} // namespace corio
