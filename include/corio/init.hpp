#pragma once
/// \file init.hpp
/// `corio::init()`: start the process pools' fork server while the program is
/// still single-threaded.

namespace corio {

/// Starts the fork server that every `process_pool` worker and every `process` is
/// forked from. Call it first thing in `main` (before any thread starts) in a program
/// that creates process pools or processes after it started threads; a program that
/// creates its first pool while it is still single-threaded needs no call, the pool
/// starts the server itself. Idempotent. The fork server is a snapshot of the process
/// at this point: workers see the globals as they were then (not later changes), and
/// functions and data of libraries loaded later with `dlopen` do not exist there.
/// Throws `corio::error` if threads already run (forking a threaded process is unsafe),
/// `std::system_error` if the server cannot be created.
/// **Thread safety:** any thread, but see above: it only succeeds while the process is
/// single-threaded, unless the server already runs.
void init();

} // namespace corio
