#pragma once
// Functions the Redis pool tests send to workers; registered (CORIO_REMOTE) in both
// the test program and the test worker program (redis_functions.cpp is in both).

#include <string>
#include <vector>

namespace redis_fns {

int square(int x);
int add(int a, int b);
std::string echo(std::string s);
int fail_with(int x);   // throws std::invalid_argument("bad value: x")
int fail_custom(int x); // throws redis_fns::custom_error
void nothing();
// Creates <dir>/started-<n> (n = 1, 2, ... a fresh name per start), then waits until
// <dir>/release exists, and returns `value`.
int hold(std::string dir, int value);
int sleep_ms(int ms); // sleeps, returns ms
int typed_int(int x); // the worker's signature; the test registers another one

} // namespace redis_fns
