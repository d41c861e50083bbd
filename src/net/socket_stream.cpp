// socket_stream: what a stream socket adds to byte_stream (net/byte_stream.cpp).

#include "net/socket_ops.hpp"
#include "net/ring_socket_state.hpp"

#include "ring/io_ops.hpp"
#include <corio/net.hpp>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace corio {

using detail::socket_name;
using detail::throw_errno;

// ---- socket_stream ---------------------------------------------------------------------

void socket_stream::shutdown_write() {
    if (::shutdown(fd(), SHUT_WR) != 0) {
        throw_errno(errno, "shutdown");
    }
}

endpoint socket_stream::local_endpoint() const {
    return socket_name(fd(), false);
}
endpoint socket_stream::remote_endpoint() const {
    return socket_name(fd(), true);
}

} // namespace corio
