// corio::serialize: round trips of every supported category, the customization
// point, aggregates (and the ones it refuses), malformed input, and linear cost on
// large payloads.
#include <corio/serialize.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <set>
#include <tuple>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace {

template <class T>
T round_trip(const T& v) {
    return corio::from_bytes<T>(corio::to_bytes(v));
}

enum class color : std::uint8_t { red = 1, green = 2, blue = 200 };
enum plain_enum : int { alpha = -5, beta = 7 };

struct point {
    double x;
    double y;
    bool operator==(const point&) const = default;
};

struct record {
    std::string name;
    int age;
    std::vector<point> path;
    std::optional<color> favourite;
    std::map<std::string, std::vector<int>> tags;
    bool operator==(const record&) const = default;
};

// A non-aggregate user type with the customization point.
class money {
public:
    money() = default;
    money(std::string currency, std::int64_t cents)
        : currency_(std::move(currency)), cents_(cents) {
        ++live;
    }
    money(const money& o) : currency_(o.currency_), cents_(o.cents_) { ++live; }
    money(money&& o) noexcept : currency_(std::move(o.currency_)), cents_(o.cents_) { ++live; }
    money& operator=(const money&) = default;
    ~money() {
        if (!currency_.empty() || cents_ != 0) {
            --live;
        }
    }
    const std::string& currency() const { return currency_; }
    std::int64_t cents() const { return cents_; }
    bool operator==(const money& o) const { return currency_ == o.currency_ && cents_ == o.cents_; }
    static inline int live = 0;

private:
    std::string currency_;
    std::int64_t cents_ = 0;
};

struct not_serializable {
    virtual ~not_serializable() = default;
};

// Aggregates the aggregate rule refuses cleanly (structured bindings cannot take
// them apart field by field): a base class, even an empty one, and C-array fields.
struct base_fields {
    int a;
};
struct with_base : base_fields {
    int b;
};
struct empty_base {};
struct with_empty_base : empty_base {
    int a;
    int b;
};
struct with_c_array {
    int a[3];
    int b;
};
struct with_long_c_array {
    int id;
    char name[40];
};
struct with_matrix {
    double m[4][4];
};
// Fields the C-array check must not mistake for arrays: no default constructor,
// initializer lists, a one-element array (refused as a field type, not by the check).
struct explicit_only {
    explicit explicit_only(int v) : value(v) {}
    int value;
    bool operator==(const explicit_only&) const = default;
};
struct mixed_fields {
    explicit_only e;
    std::string s;
    std::array<int, 3> a;
    std::variant<int, std::string> v;
    std::optional<std::string> o;
    bool operator==(const mixed_fields&) const = default;
};
struct with_one_element_array {
    int a[1];
};
// Aggregates of fields without a default constructor: serializable, and a C array
// of them (or of anything, followed by such a field) still refused cleanly.
struct explicit_pair {
    explicit_only first;
    explicit_only second;
    bool operator==(const explicit_pair&) const = default;
};
struct no_default_fields {
    explicit_only e;
    explicit_pair p;
    std::pair<explicit_only, std::string> q;
    explicit_only last;
    bool operator==(const no_default_fields&) const = default;
};
struct with_no_default_c_array {
    int id;
    explicit_only a[2];
};
struct with_leading_no_default_c_array {
    explicit_only a[3];
    int id;
};
struct with_nested_aggregate_c_array {
    int id;
    explicit_pair a[2];
    explicit_only last;
};
struct with_point_c_array {
    int id;
    point a[2];
};
struct with_string_c_array {
    std::string a[2];
    explicit_only last;
};
struct with_no_default_matrix {
    explicit_only m[2][2];
};
struct with_17_fields {
    int f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16;
};
struct with_16_fields {
    int f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15;
};
struct with_move_only_field {
    int id;
    std::unique_ptr<int> p;
};

} // namespace

// Every allocation of this program is counted: the large-payload test counts
// bytes instead of timing them.
#include "allocation_counter.hpp"

template <>
struct corio::serializer<explicit_only> {
    static void write(corio::byte_writer& w, const explicit_only& e) { w.write_raw(e.value); }
    static explicit_only read(corio::byte_reader& r) { return explicit_only(r.read_raw<int>()); }
};

template <>
struct corio::serializer<money> {
    static void write(corio::byte_writer& w, const money& m) {
        corio::serialize(w, m.currency(), m.cents());
    }
    static money read(corio::byte_reader& r) {
        auto currency = corio::deserialize<std::string>(r);
        auto cents = corio::deserialize<std::int64_t>(r);
        return money(std::move(currency), cents);
    }
};

static_assert(corio::serializable<int>);
static_assert(
    corio::serializable<std::tuple<int, std::string, std::vector<std::pair<int, double>>>>);
static_assert(corio::serializable<point>);
static_assert(corio::serializable<record>);
static_assert(corio::serializable<money>);
static_assert(corio::serializable<std::variant<std::monostate, money, point>>);
static_assert(!corio::serializable<not_serializable>);
static_assert(!corio::serializable<int*>);
static_assert(!corio::serializable<std::string_view>);
static_assert(!corio::serializable<std::vector<int*>>);
static_assert(!corio::serializable<std::unique_ptr<int>>);
static_assert(!corio::serializable<const int>);
static_assert(corio::serializer<record>::fields == 5);
static_assert(!corio::serializable<with_base>);
static_assert(!corio::serializable<with_empty_base>);
static_assert(!corio::serializable<with_c_array>);
static_assert(!corio::serializable<with_long_c_array>);
static_assert(!corio::serializable<with_matrix>);
static_assert(!corio::serializable<with_one_element_array>);
static_assert(!corio::serializable<std::vector<with_base>>);
static_assert(corio::serializable<mixed_fields>);
static_assert(corio::serializable<no_default_fields>);
static_assert(corio::serializer<no_default_fields>::fields == 4);
static_assert(corio::serializable<with_16_fields>);
static_assert(!corio::serializable<with_no_default_c_array>);
static_assert(!corio::serializable<with_leading_no_default_c_array>);
static_assert(!corio::serializable<with_nested_aggregate_c_array>);
static_assert(!corio::serializable<with_point_c_array>);
static_assert(!corio::serializable<with_string_c_array>);
static_assert(!corio::serializable<with_no_default_matrix>);
static_assert(!corio::serializable<with_17_fields>);
static_assert(!corio::serializable<with_move_only_field>);

TEST_CASE("arithmetic values and enums round-trip bit for bit", "[serialize][scalar]") {
    CHECK(round_trip(42) == 42);
    CHECK(round_trip(-1LL) == -1LL);
    CHECK(round_trip(std::numeric_limits<std::uint64_t>::max()) ==
          std::numeric_limits<std::uint64_t>::max());
    CHECK(round_trip(3.25) == 3.25);
    CHECK(round_trip(true) == true);
    CHECK(round_trip('x') == 'x');
    CHECK(round_trip(color::blue) == color::blue);
    CHECK(round_trip(alpha) == alpha);
    CHECK(round_trip(std::chrono::milliseconds(1500)) == std::chrono::milliseconds(1500));
}

TEST_CASE("strings and sequence containers round-trip", "[serialize][container]") {
    CHECK(round_trip(std::string()).empty());
    CHECK(round_trip(std::string("hello\0world", 11)) == std::string("hello\0world", 11));
    CHECK(round_trip(std::vector<int>{1, 2, 3}) == std::vector<int>{1, 2, 3});
    CHECK(round_trip(std::vector<bool>{true, false, true}) == std::vector<bool>{true, false, true});
    CHECK(round_trip(std::vector<std::string>{"a", "", "ccc"}) ==
          std::vector<std::string>{"a", "", "ccc"});
    CHECK(round_trip(std::array<int, 3>{7, 8, 9}) == std::array<int, 3>{7, 8, 9});
    CHECK(round_trip(std::deque<int>{4, 5}) == std::deque<int>{4, 5});
    CHECK(round_trip(std::list<std::string>{"x", "y"}) == std::list<std::string>{"x", "y"});
    CHECK(round_trip(std::set<int>{3, 1, 2}) == std::set<int>{1, 2, 3});
    CHECK(round_trip(std::unordered_set<std::string>{"p", "q"}) ==
          std::unordered_set<std::string>{"p", "q"});
}

TEST_CASE("pairs, tuples, optionals and variants round-trip", "[serialize][product]") {
    CHECK(round_trip(std::pair<int, std::string>{1, "one"}) ==
          std::pair<int, std::string>{1, "one"});
    using tup = std::tuple<int, double, std::string, std::vector<int>>;
    CHECK(round_trip(tup{1, 2.5, "three", {4}}) == tup{1, 2.5, "three", {4}});
    CHECK(round_trip(std::tuple<>{}) == std::tuple<>{});
    CHECK(round_trip(std::optional<int>{}) == std::nullopt);
    CHECK(round_trip(std::optional<std::string>{"some"}) == std::optional<std::string>{"some"});
    using var = std::variant<std::monostate, int, std::string>;
    CHECK(round_trip(var{}) == var{});
    CHECK(round_trip(var{5}) == var{5});
    CHECK(round_trip(var{std::string("s")}) == var{std::string("s")});
}

TEST_CASE("maps and deeply nested combinations round-trip", "[serialize][nested]") {
    std::map<std::string, std::vector<std::optional<std::pair<int, std::string>>>> m{
        {"a", {std::nullopt, std::pair<int, std::string>{1, "x"}}}, {"b", {}}};
    CHECK(round_trip(m) == m);
    std::unordered_map<int, std::map<int, std::variant<int, std::string>>> u{
        {1, {{2, 3}, {4, std::string("five")}}}, {6, {}}};
    CHECK(round_trip(u) == u);
    std::vector<std::vector<std::vector<int>>> cube{{{1}, {2, 3}}, {}, {{}}};
    CHECK(round_trip(cube) == cube);
}

TEST_CASE("aggregates are serialized field by field without any declaration",
          "[serialize][aggregate]") {
    CHECK(round_trip(point{1.5, -2}) == point{1.5, -2});
    record r{"ada", 36, {{0, 0}, {1, 1}}, color::green, {{"k", {1, 2}}}};
    CHECK(round_trip(r) == r);
    CHECK(round_trip(std::vector<record>{r, r}) == std::vector<record>{r, r});
    const mixed_fields m{explicit_only(7), "s", {1, 2, 3}, std::string("v"), std::nullopt};
    CHECK(round_trip(m) == m);
    const no_default_fields n{explicit_only(1),
                              {explicit_only(2), explicit_only(3)},
                              {explicit_only(4), "four"},
                              explicit_only(5)};
    CHECK(round_trip(n) == n);
}

TEST_CASE("a user type goes through its serializer specialization", "[serialize][custom]") {
    REQUIRE(money::live == 0);
    {
        std::vector<money> wallet{money("EUR", 1050), money("USD", -3)};
        auto back = round_trip(wallet);
        CHECK(back == wallet);
        std::variant<std::monostate, money, point> v = money("JPY", 100);
        CHECK(std::get<money>(round_trip(v)).cents() == 100);
    }
    CHECK(money::live == 0);
}

TEST_CASE("truncated or trailing input throws serialize_error", "[serialize][error]") {
    auto bytes = corio::to_bytes(std::vector<std::string>{"hello", "world"});
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        CHECK_THROWS_AS(
            corio::from_bytes<std::vector<std::string>>(std::string_view(bytes).substr(0, n)),
            corio::serialize_error);
    }
    CHECK_THROWS_AS(corio::from_bytes<int>(corio::to_bytes(1, 2)), corio::serialize_error);
    // A corrupt length never allocates beyond the input.
    auto huge = corio::to_bytes(std::uint64_t{1} << 60);
    CHECK_THROWS_AS(corio::from_bytes<std::vector<std::string>>(huge), corio::serialize_error);
    CHECK_THROWS_AS(corio::from_bytes<std::string>(huge), corio::serialize_error);
    auto bad_index = corio::to_bytes(std::uint64_t{9});
    CHECK_THROWS_AS((corio::from_bytes<std::variant<int, double>>(bad_index)),
                    corio::serialize_error);
}

TEST_CASE("several values written in a row are read back in order", "[serialize][stream]") {
    corio::byte_writer w;
    corio::serialize(w, 1, std::string("two"), 3.0);
    std::string bytes = w.take();
    corio::byte_reader r(bytes);
    CHECK(corio::deserialize<int>(r) == 1);
    CHECK(corio::deserialize<std::string>(r) == "two");
    CHECK(corio::deserialize<double>(r) == 3.0);
    CHECK(r.empty());
}

TEST_CASE("an 80 MiB payload round-trips with allocations linear in its size",
          "[serialize][large]") {
    std::vector<std::uint64_t> big(8u << 20);
    for (std::size_t i = 0; i < big.size(); ++i) {
        big[i] = i * 2654435761u;
    }
    std::string text(16u << 20, 'z');
    const std::size_t payload = big.size() * 8 + text.size();
    if (!CORIO_TEST_COUNTS_ALLOCATIONS) {
        SUCCEED("allocations are not counted under ThreadSanitizer");
        return;
    }
    // Counted, not timed: encoding grows one buffer geometrically (every capacity it
    // went through adds up to less than twice the last, which is less than twice the
    // payload), decoding allocates each value once. A buffer grown in fixed steps
    // would allocate quadratically more.
    const std::size_t before = bytes_allocated.load();
    auto bytes = corio::to_bytes(big, text);
    const std::size_t encoding = bytes_allocated.load() - before;
    corio::byte_reader r(bytes);
    auto big2 = corio::deserialize<std::vector<std::uint64_t>>(r);
    auto text2 = corio::deserialize<std::string>(r);
    const std::size_t decoding = bytes_allocated.load() - before - encoding;
    CHECK(big2 == big);
    CHECK(text2 == text);
    CHECK(bytes.size() == 16 + payload);
    CHECK(encoding >= payload);
    CHECK(encoding <= 4 * payload + 4096);
    CHECK(decoding >= payload);
    CHECK(decoding <= payload + 4096);
}

namespace {
std::string length_word(std::uint64_t n) {
    std::string bytes(sizeof n, '\0');
    std::memcpy(bytes.data(), &n, sizeof n);
    return bytes;
}
enum loose_enum { loose_a, loose_b };
struct flagged {
    int id;
    bool on;
};
} // namespace

TEST_CASE("hostile input: lengths of zero-size elements are bounded, invalid bools refused",
          "[serialize][hostile]") {
    using corio::serialize_error;
    // A huge length of elements that encode in zero bytes: refused, not looped over.
    CHECK_THROWS_AS(corio::from_bytes<std::vector<std::monostate>>(length_word(1ULL << 60)),
                    serialize_error);
    CHECK_THROWS_AS(corio::from_bytes<std::set<std::tuple<>>>(length_word(~0ULL)), serialize_error);
    CHECK_THROWS_AS(corio::from_bytes<std::list<std::monostate>>(length_word(1ULL << 40)),
                    serialize_error);
    CHECK_THROWS_AS(corio::from_bytes<std::deque<std::tuple<>>>(length_word(1ULL << 40)),
                    serialize_error);
    CHECK_THROWS_AS((corio::from_bytes<std::map<std::tuple<>, std::monostate>>(length_word(~0ULL))),
                    serialize_error);
    // Nested: the budget is per reader, so many inner lengths cannot multiply it.
    std::string nested = length_word(4096);
    for (int i = 0; i < 4096; ++i) {
        nested += length_word(1ULL << 19);
    }
    CHECK_THROWS_WITH(corio::from_bytes<std::vector<std::vector<std::monostate>>>(nested),
                      Catch::Contains("zero-size elements"));
    // Within the documented budget, zero-size elements round-trip.
    std::vector<std::monostate> empties(1000);
    CHECK(round_trip(empties).size() == 1000);
    std::vector<std::tuple<>> at_cap(corio::byte_reader::max_empty_elements);
    CHECK(round_trip(at_cap).size() == corio::byte_reader::max_empty_elements);
    std::vector<std::tuple<>> over_cap(corio::byte_reader::max_empty_elements + 1);
    CHECK_THROWS_AS(round_trip(over_cap), serialize_error);
    // A length backed by the bytes left is accepted; one beyond them is truncation.
    CHECK_THROWS_AS(corio::from_bytes<std::vector<std::uint8_t>>(length_word(1ULL << 62)),
                    serialize_error);

    // bool: one byte, 0 or 1; anything else is malformed (never undefined behaviour).
    CHECK(corio::from_bytes<bool>(std::string(1, '\x01')));
    CHECK_FALSE(corio::from_bytes<bool>(std::string(1, '\x00')));
    CHECK_THROWS_WITH(corio::from_bytes<bool>(std::string(1, '\x02')),
                      Catch::Contains("invalid bool"));
    CHECK_THROWS_AS(corio::from_bytes<std::vector<bool>>(length_word(1) + '\x07'), serialize_error);
    CHECK_THROWS_AS(corio::from_bytes<std::optional<bool>>(std::string("\x01\xff", 2)),
                    serialize_error);
    std::string bad_flag = corio::to_bytes(flagged{3, true});
    bad_flag.back() = '\x09';
    CHECK_THROWS_AS(corio::from_bytes<flagged>(bad_flag), serialize_error);
    CHECK(corio::from_bytes<flagged>(corio::to_bytes(flagged{3, true})).on);

    // Enums: one with a fixed underlying type accepts every value of that type (all
    // are valid values of the enum); one without is not serializable at all.
    STATIC_REQUIRE(corio::serializable<color>);
    STATIC_REQUIRE(corio::serializable<plain_enum>);
    STATIC_REQUIRE_FALSE(corio::serializable<loose_enum>);
    CHECK(static_cast<int>(corio::from_bytes<color>(std::string(1, '\x05'))) == 5);
}
