#include "counting.hpp"

#include <corio/generator.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <ranges>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

corio::generator<int> count_to(int n) {
    for (int i = 1; i <= n; ++i) {
        co_yield i;
    }
}

// The seed's print_name consumer coroutine, writing to a log instead of stdout.
corio::generator<void, std::string> print_name(std::string prefix, std::vector<std::string>& out) {
    out.push_back("Searching prefix: " + prefix);
    try {
        for (;;) {
            std::string name = co_yield {};
            if (name.find(prefix) != std::string::npos) {
                out.push_back(name);
            }
        }
    } catch (const corio::generator_exit&) {
        out.push_back("Closing coroutine!!");
    }
}

corio::generator<int, int> running_total() {
    int total = 0;
    for (;;) {
        total += co_yield total;
    }
}

} // namespace

TEST_CASE("a generator is iterated by range-for", "[generator]") {
    std::vector<int> got;
    for (int v : count_to(4)) {
        got.push_back(v);
    }
    CHECK(got == std::vector<int>{1, 2, 3, 4});
}

TEST_CASE("a generator is a std::ranges input range", "[generator][ranges]") {
    static_assert(std::ranges::input_range<corio::generator<int>>);
    static_assert(std::input_iterator<corio::generator<int>::iterator>);
    auto gen = count_to(6);
    std::vector<int> got;
#if defined(__clang__) && __clang_major__ < 15
    // clang 14 cannot compile libstdc++ 12's range adaptors (for any range).
    for (auto it = std::ranges::begin(gen); it != std::ranges::end(gen); ++it) {
        if (*it % 2 == 0) {
            got.push_back(*it);
        }
    }
#else
    for (int v : gen | std::views::filter([](int x) { return x % 2 == 0; })) {
        got.push_back(v);
    }
#endif
    CHECK(got == std::vector<int>{2, 4, 6});
}

TEST_CASE("the print_name consumer prints exactly the expected lines", "[generator][send]") {
    std::vector<std::string> out;
    auto corou = print_name("Dear", out);
    corou.next();
    corou.send("James");
    corou.send("Dear James");
    corou.close();
    CHECK(out ==
          std::vector<std::string>{"Searching prefix: Dear", "Dear James", "Closing coroutine!!"});
    CHECK(corou.finished());
}

TEST_CASE("send returns the next yielded value", "[generator][send]") {
    auto gen = running_total();
    CHECK(gen.next() == 0);
    CHECK(gen.send(5) == 5);
    CHECK(gen.send(10) == 15);
    CHECK(gen.next() == 15); // next() sends Send{}
}

TEST_CASE("send before priming is an error", "[generator][send][error]") {
    std::vector<std::string> out;
    auto corou = print_name("Dear", out);
    CHECK_THROWS_AS(corou.send("James"), corio::error);
    CHECK(out.empty()); // the body did not run
    corou.next();
    CHECK(out.size() == 1);
}

TEST_CASE("send to a finished generator is an error", "[generator][send][error]") {
    auto gen = []() -> corio::generator<int, int> {
        int v = co_yield 1;
        (void)v;
    }();
    CHECK(gen.next() == 1);
    CHECK_FALSE(gen.send(2).has_value());
    CHECK(gen.finished());
    CHECK_THROWS_AS(gen.send(3), corio::error);
}

TEST_CASE("close runs the cleanup in the body", "[generator][close]") {
    std::vector<std::string> log;
    auto gen = [](std::vector<std::string>& l) -> corio::generator<int> {
        try {
            co_yield 1;
            co_yield 2;
        } catch (const corio::generator_exit&) {
            l.push_back("cleanup");
            throw;
        }
    }(log);
    CHECK(gen.next() == 1);
    gen.close();
    CHECK(log == std::vector<std::string>{"cleanup"});
    CHECK(gen.finished());
    gen.close(); // no effect on a finished generator
    CHECK(log.size() == 1);
    CHECK_FALSE(gen.next().has_value());
}

TEST_CASE("generator_exit is not caught as a std::exception", "[generator][close]") {
    bool caught_std = false;
    auto gen = [](bool& c) -> corio::generator<int> {
        try {
            co_yield 1;
        } catch (const std::exception&) {
            c = true;
        }
    }(caught_std);
    CHECK(gen.next() == 1);
    gen.close();
    CHECK_FALSE(caught_std);
    CHECK(gen.finished());
}

TEST_CASE("closing an unstarted generator never runs its body", "[generator][close]") {
    bool ran = false;
    auto gen = [](bool& r) -> corio::generator<int> {
        r = true;
        co_yield 1;
    }(ran);
    gen.close();
    CHECK_FALSE(ran);
    CHECK(gen.finished());
    CHECK_FALSE(gen.next().has_value());
}

TEST_CASE("a generator yielding after close is an error", "[generator][close][error]") {
    auto gen = []() -> corio::generator<int> {
        for (;;) {
            try {
                co_yield 1;
            } catch (const corio::generator_exit&) {
                // ignores the request and yields again
            }
        }
    }();
    CHECK(gen.next() == 1);
    CHECK_THROWS_WITH(gen.close(), Catch::Contains("ignored generator_exit"));
}

TEST_CASE("close rethrows another exception escaping the body", "[generator][close][error]") {
    auto gen = []() -> corio::generator<int> {
        try {
            co_yield 1;
        } catch (const corio::generator_exit&) {
            throw std::logic_error("cleanup failed");
        }
    }();
    CHECK(gen.next() == 1);
    CHECK_THROWS_AS(gen.close(), std::logic_error);
    CHECK(gen.finished());
}

TEST_CASE("throw_into reaches the body at its co_yield", "[generator][throw]") {
    auto gen = []() -> corio::generator<std::string> {
        for (;;) {
            std::string reply = "waiting";
            try {
                co_yield "waiting";
                continue;
            } catch (const std::runtime_error& e) {
                reply = std::string("caught ") + e.what(); // no co_yield inside a handler
            }
            co_yield reply;
        }
    }();
    CHECK(gen.next() == "waiting");
    CHECK(gen.throw_into(std::make_exception_ptr(std::runtime_error("boom"))) == "caught boom");
    CHECK(gen.next() == "waiting");
}

TEST_CASE("throw_into rethrows an exception the body does not handle",
          "[generator][throw][error]") {
    auto gen = count_to(3);
    CHECK(gen.next() == 1);
    CHECK_THROWS_AS(gen.throw_into(std::make_exception_ptr(std::out_of_range("x"))),
                    std::out_of_range);
    CHECK(gen.finished());
    CHECK_THROWS_AS(gen.throw_into(nullptr), std::invalid_argument);
}

TEST_CASE("throw_into an unstarted generator finishes it without running it",
          "[generator][throw]") {
    bool ran = false;
    auto gen = [](bool& r) -> corio::generator<int> {
        r = true;
        co_yield 1;
    }(ran);
    CHECK_THROWS_AS(gen.throw_into(std::make_exception_ptr(std::out_of_range("x"))),
                    std::out_of_range);
    CHECK_FALSE(ran);
    CHECK(gen.finished());
}

TEST_CASE("an exception in the body reaches the consumer", "[generator][error]") {
    auto gen = []() -> corio::generator<int> {
        co_yield 1;
        throw std::runtime_error("broken");
    }();
    auto it = gen.begin();
    CHECK(*it == 1);
    CHECK_THROWS_AS(++it, std::runtime_error);
    CHECK(it == gen.end());
}

TEST_CASE("destroying a suspended generator destroys the body's objects once",
          "[generator][lifetime]") {
    {
        auto gen = [](corio_test::counted) -> corio::generator<corio_test::counted> {
            corio_test::counted local;
            co_yield corio_test::counted{};
            co_yield local;
        }(corio_test::counted{});
        auto v = gen.next();
        CHECK(v.has_value());
        CHECK(corio_test::counted::live > 0);
    }
    CHECK(corio_test::counted::live == 0);
}

TEST_CASE("yielded lvalues are referenced, const lvalues copied", "[generator]") {
    auto gen = []() -> corio::generator<std::string> {
        std::string mutable_value = "a";
        co_yield mutable_value;
        const std::string fixed = "b";
        co_yield fixed;
        co_yield mutable_value; // moved-from by the consumer below
    }();
    auto it = gen.begin();
    CHECK(*it == "a");
    std::string taken = std::move(*it);
    ++it;
    CHECK(*it == "b");
    std::string copy = std::move(*it);
    ++it;
    CHECK(taken == "a");
    CHECK(copy == "b");
    CHECK((*it).empty());
}

TEST_CASE("an empty generator is finished", "[generator]") {
    corio::generator<int> gen;
    CHECK(gen.finished());
    CHECK_FALSE(gen.next().has_value());
    CHECK(gen.begin() == gen.end());
}

TEST_CASE("iterating a generator with a Send type sends default values", "[generator][send]") {
    std::vector<int> got;
    auto gen = running_total(); // total += what co_yield returns (0 when iterated)
    for (int v : gen) {
        got.push_back(v);
        if (got.size() == 3) {
            break;
        }
    }
    CHECK(got == std::vector<int>{0, 0, 0});
    CHECK(gen.send(4) == 4);
}
