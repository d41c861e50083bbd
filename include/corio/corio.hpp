#pragma once
/// \file corio.hpp
/// Umbrella header: all of corio.

#include <corio/error.hpp>
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>
