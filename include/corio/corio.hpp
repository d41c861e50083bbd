#pragma once
/// \file corio.hpp
/// Umbrella header: all of corio.

#include <corio/async_generator.hpp>
#include <corio/async_result.hpp>
#include <corio/basic_pool.hpp>
#include <corio/byte_stream.hpp>
#include <corio/combinators.hpp>
#include <corio/descriptor.hpp>
#include <corio/error.hpp>
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/generator.hpp>
#include <corio/init.hpp>
#include <corio/io.hpp>
#include <corio/ipc.hpp>
#include <corio/net.hpp>
#include <corio/outcome.hpp>
#include <corio/pool.hpp>
#include <corio/process.hpp>
#include <corio/process_error.hpp>
#include <corio/process_pool.hpp>
#include <corio/progress_bar.hpp>
#include <corio/queue.hpp>
#include <corio/serialize.hpp>
#include <corio/signal.hpp>
#include <corio/sleep.hpp>
#include <corio/subprocess.hpp>
#include <corio/sync.hpp>
#include <corio/task.hpp>
#include <corio/task_group.hpp>
#include <corio/threadsafe.hpp>
#include <corio/timeout.hpp>
#include <corio/thread_pool.hpp>
#include <corio/to_thread.hpp>
