// The seed's consumer coroutine (Python's print_name) as a corio::generator with a
// Send type: it prints the names it is sent that contain its prefix, and says
// goodbye when it is closed.
//
//   def print_name(prefix):
//       print("Searching prefix:{}".format(prefix))
//       try:
//           while True:
//               name = (yield)
//               if prefix in name:
//                   print(name)
//       except GeneratorExit:
//           print("Closing coroutine!!")

#include <corio/corio.hpp>

#include <fmt/format.h>

#include <string>

namespace {

// Yields nothing (T = void) and receives std::string through send().
corio::generator<void, std::string> print_name(std::string prefix) {
    fmt::print("Searching prefix: {}\n", prefix);
    try {
        for (;;) {
            std::string name = co_yield {};
            if (name.find(prefix) != std::string::npos) {
                fmt::print("{}\n", name);
            }
        }
    } catch (const corio::generator_exit&) {
        fmt::print("Closing coroutine!!\n");
    }
}

} // namespace

int main() {
    auto corou = print_name("Dear");
    corou.next(); // prime it: runs to the first co_yield
    corou.send("James");
    corou.send("Dear James");
    corou.close();
}
