#pragma once
// The work a process_pool sends: one job per apply_async / map_async / imap. A job
// holds the encoded frames of its chunks, ready to send (built once, by the caller's
// thread), and decodes the answers into its result. The dispatcher thread is the only
// one that touches a job after submission (it is also the pool's result thread).
//
// Reference protocol: every chunk that is queued, in flight at a worker or waiting to
// be retried holds one reference to its job (`keep(n)` at submission, `drop()` once
// the chunk was answered, failed or abandoned).

#include <corio/async_result.hpp>
#include <corio/detail/process_wire.hpp>
#include <corio/detail/thread_pool_jobs.hpp>
#include <corio/imap_result.hpp>
#include <corio/serialize.hpp>

#include <algorithm>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace corio::detail {

/// What the dispatcher sees of a job.
class process_job {
public:
    process_job(const process_job&) = delete;
    process_job& operator=(const process_job&) = delete;

    /// Number of chunks (frames).
    std::size_t chunk_count() const noexcept { return offsets_.size() - 1; }
    /// The encoded frame of chunk `k`.
    std::string_view frame(std::size_t k) const noexcept {
        return std::string_view(frames_).substr(offsets_[k], offsets_[k + 1] - offsets_[k]);
    }

    /// Dispatcher: the answer to chunk `k`, one outcome per item.
    virtual void on_chunk(std::size_t k, byte_reader& outcomes) noexcept = 0;
    /// Dispatcher: chunk `k` failed as a whole (its worker died, the pool broke).
    virtual void on_chunk_failed(std::size_t k, std::exception_ptr e) noexcept = 0;
    /// The pool was terminated before the job finished (idempotent).
    virtual void on_terminated() noexcept = 0;
    /// Reference counting of the concrete job.
    virtual void keep(std::size_t n) noexcept = 0;
    virtual void drop() noexcept = 0;

protected:
    process_job() = default;
    ~process_job() = default;

    /// Appends one task frame of `items` (each a value or a tuple-like of arguments)
    /// calling `target`; `stop_on_error` makes the worker skip the rest of the chunk
    /// after an item threw (map semantics).
    template <class It>
    void add_chunk(byte_writer& w, call_target target, bool stop_on_error, It first, It last) {
        const std::size_t at = begin_frame(w, frame_kind::task, chunk_count_hint_++,
                                           static_cast<std::uint32_t>(std::distance(first, last)));
        w.write_raw(target);
        w.write_raw(static_cast<std::uint8_t>(stop_on_error));
        for (; first != last; ++first)
            serialize(w, *first);
        finish_frame(w, at);
        offsets_.push_back(w.size());
    }

    /// Encodes `inputs` into one frame per chunk of `chunksize` items (the frames
    /// of a map). The buffer is sized from the first chunk's bytes per item, so a
    /// large map is not copied over and over as the buffer grows.
    template <class In>
    void add_chunks(call_target target, bool stop_on_error, const std::vector<In>& inputs,
                    std::size_t chunksize) {
        byte_writer w;
        const std::size_t n = inputs.size();
        offsets_.reserve((n + chunksize - 1) / chunksize + 1);
        for (std::size_t b = 0; b < n; b += chunksize) {
            const std::size_t e = std::min(n, b + chunksize);
            add_chunk(w, target, stop_on_error, inputs.begin() + static_cast<std::ptrdiff_t>(b),
                      inputs.begin() + static_cast<std::ptrdiff_t>(e));
            if (b == 0 && e < n) {
                const std::size_t per_item = w.size() / e + 1;
                const std::size_t frames = (n - e + chunksize - 1) / chunksize;
                w.reserve(per_item * (n - e) + frames * 64);
            }
        }
        frames_ = w.take();
    }

    std::string frames_;
    std::vector<std::size_t> offsets_{0};

private:
    std::uint64_t chunk_count_hint_ = 0;
};

/// One apply_async.
template <class R, class CB, class ECB>
class process_apply_job final : public result_state<R>, public process_job {
public:
    template <class Tuple>
    process_apply_job(call_target target, const Tuple& args, CB cb, ECB ecb)
        : cb_(std::move(cb)), ecb_(std::move(ecb)) {
        byte_writer w;
        const std::size_t at = begin_frame(w, frame_kind::task, 0, 1);
        w.write_raw(target);
        w.write_raw(std::uint8_t{0});
        std::apply([&](const auto&... a) { serialize(w, to_wire(a)...); }, args);
        finish_frame(w, at);
        frames_ = w.take();
        offsets_.push_back(frames_.size());
    }

    void on_chunk(std::size_t, byte_reader& r) noexcept override {
        std::exception_ptr err;
        try {
            if (r.read_raw<std::uint8_t>() == 0) {
                if constexpr (!std::is_void_v<R>)
                    this->slot().emplace(deserialize<R>(r));
            } else {
                err = read_exception(r);
            }
        } catch (...) {
            err = std::current_exception();
        }
        finish(std::move(err));
    }
    void on_chunk_failed(std::size_t, std::exception_ptr e) noexcept override {
        finish(std::move(e));
    }
    void on_terminated() noexcept override { this->set_terminated(); }
    void keep(std::size_t n) noexcept override { this->retain(n); }
    void drop() noexcept override { this->release(); }

private:
    void finish(std::exception_ptr err) noexcept {
        if (this->done())
            return;
        complete_with_callbacks(static_cast<result_state<R>&>(*this), cb_, ecb_, std::move(err));
    }

    [[no_unique_address]] CB cb_;
    [[no_unique_address]] ECB ecb_;
};

/// One map / starmap: results in input order; the first exception to arrive fails the
/// map once every chunk finished (Python's MapResult).
template <class V, class CB, class ECB>
class process_map_job final : public result_state<std::vector<V>>, public process_job {
public:
    using progress_fn = std::function<void(std::size_t, std::size_t)>;

    template <class In>
    process_map_job(call_target target, const std::vector<In>& inputs, std::size_t chunksize,
                    const progress_fn* progress, CB cb, ECB ecb)
        : n_(inputs.size()), chunksize_(chunksize), remaining_((n_ + chunksize - 1) / chunksize),
          progress_(progress != nullptr && *progress ? progress : nullptr), cb_(std::move(cb)),
          ecb_(std::move(ecb)) {
        if constexpr (in_place)
            results_.resize(n_);
        else
            staging_ = std::make_unique<std::optional<V>[]>(n_);
        add_chunks(target, true, inputs, chunksize_);
    }

    void on_chunk(std::size_t k, byte_reader& r) noexcept override {
        try {
            for (std::size_t i = k * chunksize_, e = end_of(k); i < e; ++i) {
                if (r.read_raw<std::uint8_t>() != 0) {
                    fail(read_exception(r));
                    break; // the worker skipped the rest of the chunk
                }
                if constexpr (in_place)
                    results_[i] = deserialize<V>(r);
                else
                    staging_[i].emplace(deserialize<V>(r));
            }
        } catch (...) {
            fail(std::current_exception());
        }
        chunk_finished(k);
    }
    void on_chunk_failed(std::size_t k, std::exception_ptr e) noexcept override {
        fail(std::move(e));
        chunk_finished(k);
    }
    void on_terminated() noexcept override { this->set_terminated(); }
    void keep(std::size_t n) noexcept override { this->retain(n); }
    void drop() noexcept override { this->release(); }

private:
    std::size_t end_of(std::size_t k) const noexcept { return std::min(n_, (k + 1) * chunksize_); }

    void fail(std::exception_ptr e) noexcept {
        if (!first_error_)
            first_error_ = std::move(e);
    }

    void chunk_finished(std::size_t k) noexcept {
        if (progress_ != nullptr) {
            items_reported_ += end_of(k) - k * chunksize_;
            if (!progress_failed_ && !this->done()) {
                try {
                    (*progress_)(items_reported_, n_);
                } catch (...) {
                    progress_failed_ = true;
                    fail(std::current_exception());
                }
            }
        }
        if (--remaining_ == 0)
            finalize();
    }

    void finalize() noexcept {
        if (this->done())
            return; // terminated
        std::exception_ptr err = first_error_;
        if (!err) {
            try {
                if constexpr (in_place) {
                    this->slot().emplace(std::move(results_));
                } else {
                    std::vector<V> out;
                    out.reserve(n_);
                    for (std::size_t i = 0; i < n_; ++i)
                        out.push_back(std::move(*staging_[i]));
                    staging_.reset();
                    this->slot().emplace(std::move(out));
                }
            } catch (...) {
                err = std::current_exception();
            }
        }
        staging_.reset();
        results_ = {};
        complete_with_callbacks(static_cast<result_state<std::vector<V>>&>(*this), cb_, ecb_,
                                std::move(err));
    }

    // Results are decoded straight into their place in the final vector when V can
    // be default-constructed and assigned; otherwise into optional slots first.
    static constexpr bool in_place =
        std::is_nothrow_default_constructible_v<V> && std::is_move_assignable_v<V>;

    const std::size_t n_;
    const std::size_t chunksize_;
    std::size_t remaining_;
    std::vector<V> results_;                      // in_place
    std::unique_ptr<std::optional<V>[]> staging_; // otherwise
    std::exception_ptr first_error_;
    const progress_fn* progress_;
    std::size_t items_reported_ = 0;
    bool progress_failed_ = false;
    [[no_unique_address]] CB cb_;
    [[no_unique_address]] ECB ecb_;
};

/// One imap / imap_unordered: per-item outcomes, chunk by chunk.
template <class V>
class process_imap_job final : public imap_state<V>, public process_job {
public:
    template <class In>
    process_imap_job(call_target target, const std::vector<In>& inputs, std::size_t chunksize,
                     bool ordered)
        : imap_state<V>(inputs.size(), chunksize, ordered) {
        add_chunks(target, false, inputs, chunksize);
    }

    using process_job::chunk_count;

    void on_chunk(std::size_t k, byte_reader& r) noexcept override {
        std::size_t i = k * this->chunksize();
        const std::size_t e = std::min(this->size(), i + this->chunksize());
        try {
            for (; i < e; ++i) {
                if (r.read_raw<std::uint8_t>() == 0) {
                    this->set_item(i, deserialize<V>(r));
                } else {
                    this->set_item_error(i, read_exception(r));
                }
            }
        } catch (...) {
            for (; i < e; ++i)
                this->set_item_error(i, std::current_exception());
        }
        this->chunk_done(k);
    }
    void on_chunk_failed(std::size_t k, std::exception_ptr e) noexcept override {
        const std::size_t b = k * this->chunksize();
        for (std::size_t i = b, end = std::min(this->size(), b + this->chunksize()); i < end; ++i) {
            this->set_item_error(i, e);
        }
        this->chunk_done(k);
    }
    void on_terminated() noexcept override { this->set_terminated(); }
    void keep(std::size_t n) noexcept override { this->retain(n); }
    void drop() noexcept override { this->release(); }
};

} // namespace corio::detail
