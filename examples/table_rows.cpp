// The tutorial's DataFrame section, ported: a table of rows and columns processed in
// parallel by row, by column, and as a whole table split in chunks (aggregates cross
// the process boundary without any declaration), each checked against serial.
#include <corio/corio.hpp>
#include <corio/process_pool.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace {

/// A small column-named table, row-major: an aggregate, so it is serializable as is.
struct table {
    std::vector<std::string> columns;
    std::vector<std::vector<double>> rows;
    bool operator==(const table&) const = default;
};

/// Per-column summary.
struct column_stats {
    double mean = 0;
    double stddev = 0;
    double minimum = 0;
    double maximum = 0;
    bool operator==(const column_stats&) const = default;
};

// By row: the Euclidean norm of a row.
double row_norm(std::vector<double> row) {
    return std::sqrt(std::inner_product(row.begin(), row.end(), row.begin(), 0.0));
}

// By column: statistics of one column.
column_stats describe(std::vector<double> column) {
    column_stats s;
    const double n = static_cast<double>(column.size());
    s.mean = std::accumulate(column.begin(), column.end(), 0.0) / n;
    double sq = 0;
    for (double x : column) {
        sq += (x - s.mean) * (x - s.mean);
    }
    s.stddev = std::sqrt(sq / n);
    const auto [lo, hi] = std::minmax_element(column.begin(), column.end());
    s.minimum = *lo;
    s.maximum = *hi;
    return s;
}

// Whole table, in chunks: add a "total" column and scale every value to [0, 1].
table normalize_chunk(table t) {
    t.columns.push_back("total");
    for (auto& row : t.rows) {
        const double total = std::accumulate(row.begin(), row.end(), 0.0);
        for (auto& x : row) {
            x /= 100.0;
        }
        row.push_back(total);
    }
    return t;
}

int failures = 0;

void check(const char* what, bool ok) {
    std::printf("%-44s %s\n", what, ok ? "matches serial" : "MISMATCH");
    if (!ok) {
        ++failures;
    }
}

} // namespace

int main() {
    corio::init();

    std::mt19937 gen(7);
    std::uniform_real_distribution<double> value(0.0, 100.0);
    table df{{"a", "b", "c", "d"}, {}};
    df.rows.resize(20000);
    for (auto& row : df.rows) {
        row.resize(df.columns.size());
        for (auto& x : row) {
            x = value(gen);
        }
    }
    std::vector<std::vector<double>> columns(df.columns.size());
    for (std::size_t c = 0; c < columns.size(); ++c) {
        for (const auto& row : df.rows) {
            columns[c].push_back(row[c]);
        }
    }
    std::printf("table of %zu rows x %zu columns\n", df.rows.size(), df.columns.size());

    corio::process_pool pool(corio::cpu_count());

    // 1. By row.
    std::vector<double> serial_norms;
    for (const auto& row : df.rows) {
        serial_norms.push_back(row_norm(row));
    }
    check("by row: pool.map(row_norm, rows)", pool.map(row_norm, df.rows) == serial_norms);

    // 2. By column.
    std::vector<column_stats> serial_stats;
    for (const auto& col : columns) {
        serial_stats.push_back(describe(col));
    }
    const auto stats = pool.map(describe, columns, 1);
    check("by column: pool.map(describe, columns)", stats == serial_stats);
    for (std::size_t c = 0; c < stats.size(); ++c) {
        std::printf("  column %s: mean %6.2f  stddev %6.2f  min %5.2f  max %6.2f\n",
                    df.columns[c].c_str(), stats[c].mean, stats[c].stddev, stats[c].minimum,
                    stats[c].maximum);
    }

    // 3. The whole table, split in chunks of rows, processed, and put back together.
    const std::size_t parts = 4 * pool.size();
    const std::size_t per_part = (df.rows.size() + parts - 1) / parts;
    std::vector<table> chunks;
    for (std::size_t b = 0; b < df.rows.size(); b += per_part) {
        const auto e = std::min(df.rows.size(), b + per_part);
        chunks.push_back(table{df.columns,
                               {df.rows.begin() + static_cast<std::ptrdiff_t>(b),
                                df.rows.begin() + static_cast<std::ptrdiff_t>(e)}});
    }
    const auto processed = pool.map(normalize_chunk, chunks, 1);
    table joined{processed.front().columns, {}};
    for (const auto& part : processed) {
        joined.rows.insert(joined.rows.end(), part.rows.begin(), part.rows.end());
    }
    check("whole table in chunks: pool.map(normalize_chunk)", joined == normalize_chunk(df));

    pool.close();
    pool.join();
    return failures == 0 ? 0 : 1;
}
