#pragma once
// The Redis backend of basic_pool (see basic_pool.hpp for the backend interface and its
// extensions) and the jobs it sends. A job holds the name of its registered function
// and the encoded payload of each chunk (a u32 item count, then one argument tuple per
// item, built once by the caller's thread), and decodes the per-item outcomes that a
// redis_worker sends back into its result. The pool's loop thread (src/redis/
// pool_core.cpp) sends the chunks, resends them after a lost connection, receives the
// results from the client's stream and is the pool's result thread.
//
// Reference protocol: every chunk the pool still waits for holds one reference to its
// job (taken by basic_pool at submission, `drop()` once the chunk was answered or
// abandoned by terminate()).

#include <corio/async_result.hpp>
#include <corio/detail/backend_core.hpp>
#include <corio/detail/pool_jobs.hpp>
#include <corio/detail/redis_remote.hpp>
#include <corio/error.hpp>
#include <corio/imap_result.hpp>
#include <corio/pool.hpp>
#include <corio/serialize.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace corio {
struct redis_pool_options;
struct redis_queue_counts;
struct redis_failed_job;
} // namespace corio

namespace corio::detail {

class redis_job;
class redis_pool_core;

/// The batch `redis_backend::submit` queues: every chunk of one job.
struct redis_batch {
    redis_job* job = nullptr;
};

/// How a job encodes its items: each converted to `Args` (the registered function's
/// parameter tuple), unpacked first for starmap.
template <class Args, bool Star>
struct redis_encoding {};

/// What the pool's loop thread sees of a job.
class redis_job {
public:
    redis_job(const redis_job&) = delete;
    redis_job& operator=(const redis_job&) = delete;

    /// Number of chunks (Redis jobs).
    std::size_t chunk_count() const noexcept { return offsets_.size() - 1; }
    /// The registered name of the function.
    const std::string& function() const noexcept { return fn_->name; }
    /// The encoded payload of chunk `k`.
    std::string_view payload(std::size_t k) const noexcept {
        return std::string_view(payloads_).substr(offsets_[k], offsets_[k + 1] - offsets_[k]);
    }
    /// What basic_pool submits: all chunks of this job.
    redis_batch batch() noexcept { return {this}; }
    /// The Redis job id of chunk `k`; empty before submission.
    const std::string& id(std::size_t k) const noexcept { return ids_[k]; }
    /// Submission (under the pool's lock): the id of chunk `k`.
    void set_id(std::size_t k, std::string id) { ids_[k] = std::move(id); }

    /// Loop thread: the answer to chunk `k`, one outcome per item.
    virtual void on_chunk(std::size_t k, std::string_view outcomes) noexcept = 0;
    /// Loop thread: chunk `k` failed as a whole (an error of its job, the worker lost,
    /// cancelled, timed out).
    virtual void on_chunk_failed(std::size_t k, std::exception_ptr e) noexcept = 0;
    /// The pool was terminated before the job finished (idempotent).
    virtual void on_terminated() noexcept = 0;
    /// Drops the reference of one chunk (the concrete job is reference counted).
    virtual void drop() noexcept = 0;

protected:
    explicit redis_job(const remote_function& fn) : fn_(&fn) {}
    ~redis_job() = default;

    /// Appends one chunk: a u32 item count, then each item converted to `Args`.
    template <class Args, bool Star, class It>
    void add_chunk(It first, It last) {
        byte_writer w(std::move(payloads_));
        w.write_raw(static_cast<std::uint32_t>(std::distance(first, last)));
        for (; first != last; ++first) {
            if constexpr (Star) {
                std::apply([&](const auto&... a) { serialize(w, Args(a...)); }, *first);
            } else {
                serialize(w, Args(*first));
            }
        }
        payloads_ = w.take();
        offsets_.push_back(payloads_.size());
        ids_.emplace_back();
    }

    /// One chunk per `chunksize` items of `inputs`.
    template <class Args, bool Star, class In>
    void add_chunks(const std::vector<In>& inputs, std::size_t chunksize) {
        const std::size_t n = inputs.size();
        offsets_.reserve((n + chunksize - 1) / chunksize + 1);
        for (std::size_t b = 0; b < n; b += chunksize) {
            const auto first = inputs.begin() + static_cast<std::ptrdiff_t>(b);
            add_chunk<Args, Star>(first,
                                  first + static_cast<std::ptrdiff_t>(std::min(chunksize, n - b)));
        }
    }

    /// Appends the one chunk of an apply: one item, its arguments converted to `Args`.
    template <class Args, class Tuple>
    void add_call(Tuple&& args) {
        byte_writer w;
        w.write_raw(std::uint32_t{1});
        std::apply([&](auto&&... a) { serialize(w, Args(std::forward<decltype(a)>(a)...)); },
                   std::forward<Tuple>(args));
        payloads_ = w.take();
        offsets_.push_back(payloads_.size());
        ids_.emplace_back();
    }

private:
    const remote_function* fn_;
    std::string payloads_;
    std::vector<std::size_t> offsets_{0};
    std::vector<std::string> ids_;
};

/// Reads one item's outcome: stores the value through `store(value)` or returns the
/// exception the call threw.
template <class V, class Store>
std::exception_ptr read_outcome(byte_reader& r, Store&& store) {
    if (deserialize<std::uint8_t>(r) != 0) {
        return read_remote_exception(r);
    }
    if constexpr (std::is_same_v<V, std::monostate>) {
        store(std::monostate{});
    } else {
        store(deserialize<V>(r));
    }
    return nullptr;
}

/// One apply_async.
template <class R, class CB, class ECB>
class redis_apply_job final : public sent_apply_job<R, CB, ECB, redis_job> {
public:
    template <class Args, class Tuple>
    redis_apply_job(const remote_function& fn, redis_encoding<Args, false>, Tuple&& args, CB cb,
                    ECB ecb)
        : sent_apply_job<R, CB, ECB, redis_job>(std::move(cb), std::move(ecb), fn) {
        this->template add_call<Args>(std::forward<Tuple>(args));
    }

    void on_chunk(std::size_t, std::string_view outcomes) noexcept override {
        std::exception_ptr err;
        try {
            byte_reader r(outcomes);
            err = read_outcome<map_value_t<R>>(r, [&](map_value_t<R>&& v) {
                if constexpr (!std::is_void_v<R>) {
                    this->slot().emplace(std::move(v));
                }
            });
        } catch (...) {
            err = std::current_exception();
        }
        this->complete(std::move(err));
    }
};

/// One map / starmap (the worker runs every item of a chunk).
template <class V, class CB, class ECB>
class redis_map_job final : public sent_map_job<V, CB, ECB, redis_job> {
public:
    template <class Args, bool Star, class In>
    redis_map_job(const remote_function& fn, redis_encoding<Args, Star>,
                  const std::vector<In>& inputs, std::size_t chunksize,
                  const map_progress::progress_fn* progress, CB cb, ECB ecb)
        : sent_map_job<V, CB, ECB, redis_job>(inputs.size(), chunksize, progress, std::move(cb),
                                              std::move(ecb), fn) {
        this->template add_chunks<Args, Star>(inputs, chunksize);
    }

    void on_chunk(std::size_t k, std::string_view outcomes) noexcept override {
        auto& map = this->map_;
        try {
            byte_reader r(outcomes);
            for (std::size_t i = map.begin_of(k), e = map.end_of(k); i < e; ++i) {
                if (auto err =
                        read_outcome<V>(r, [&](V&& v) { map.results().set(i, std::move(v)); })) {
                    map.results().fail(std::move(err));
                }
            }
        } catch (...) {
            map.results().fail(std::current_exception());
        }
        map.chunk_finished(*this, k);
    }
};

/// One imap / imap_unordered.
template <class V>
class redis_imap_job final : public sent_imap_job<V, redis_job> {
public:
    template <class Args, class In>
    redis_imap_job(const remote_function& fn, redis_encoding<Args, false>,
                   const std::vector<In>& inputs, std::size_t chunksize, bool ordered)
        : sent_imap_job<V, redis_job>(inputs.size(), chunksize, ordered, fn) {
        this->template add_chunks<Args, false>(inputs, chunksize);
    }

    using redis_job::chunk_count;

    void on_chunk(std::size_t k, std::string_view outcomes) noexcept override {
        std::size_t i = k * this->chunksize();
        const std::size_t e = std::min(this->size(), i + this->chunksize());
        try {
            byte_reader r(outcomes);
            for (; i < e; ++i) {
                if (auto err =
                        read_outcome<V>(r, [&](V&& v) { this->set_item(i, std::move(v)); })) {
                    this->set_item_error(i, std::move(err));
                }
            }
        } catch (...) {
            for (; i < e; ++i) {
                this->set_item_error(i, std::current_exception());
            }
        }
        this->chunk_done(k);
    }
};

/// The Redis backend of `basic_pool` (the contract and the extensions it uses are in
/// basic_pool.hpp): no workers of its own (redis_worker programs serve the queue), so
/// no `size()`; calls travel by the registered name of a plain function, arguments
/// converted to its parameter types and encoded with `corio::serialize`; one thread
/// with an event loop sends the jobs and receives the results (src/redis/).
/// **Thread safety:** as basic_pool's.
class redis_backend : public backend_core<redis_pool_core> {
public:
    /// Connects to `url` and starts the pool's thread (redis_pool's constructor).
    redis_backend(std::string url, redis_pool_options options);
    ~redis_backend();

    const map_progress::progress_fn* progress() const noexcept { return progress_; }
    /// `redis_pool_options::chunksize`, or ceil(n / 64).
    std::size_t default_chunksize(std::size_t n) const noexcept {
        if (chunksize_ != 0) {
            return chunksize_;
        }
        return std::max<std::size_t>(1, (n + 63) / 64);
    }
    /// Queues every chunk of one job (basic_pool took their references).
    void submit(redis_batch batch);

    template <class F, class... A>
    static constexpr void check_apply() {
        check_function<F>();
        if constexpr (remote_signature<F>::valid) {
            static_assert(std::is_constructible_v<typename remote_signature<F>::args, A...>,
                          "corio::redis_pool: f is not callable with these arguments (they are "
                          "converted to its parameter types)");
        }
    }
    template <class F, class... A>
    using apply_result = typename remote_signature<F>::result;
    template <class F, class In, bool Star>
    static constexpr void check_map() {
        check_function<F>();
    }

    template <class R, class... A, class F, class Tuple, class CB, class ECB>
    auto make_apply_job(F&& f, Tuple&& args, CB cb, ECB ecb) {
        using fn_type = std::decay_t<F>;
        const remote_function& rf = lookup(fn_type(f));
        check_running();
        using job = redis_apply_job<R, CB, ECB>;
        return ref_ptr<job>(
            new job(rf, redis_encoding<typename remote_signature<fn_type>::args, false>{},
                    std::forward<Tuple>(args), std::move(cb), std::move(ecb)));
    }
    template <class V, bool Star, class F, class In, class CB, class ECB>
    auto make_map_job(F&& f, std::vector<In> inputs, std::size_t chunksize, CB cb, ECB ecb) {
        using fn_type = std::decay_t<F>;
        const remote_function& rf = lookup(fn_type(f));
        using job = redis_map_job<V, CB, ECB>;
        return ref_ptr<job>(
            new job(rf, redis_encoding<typename remote_signature<fn_type>::args, Star>{}, inputs,
                    chunksize, progress_, std::move(cb), std::move(ecb)));
    }
    template <class V, class F, class In>
    auto make_imap_job(F&& f, std::vector<In> inputs, std::size_t chunksize, bool ordered) {
        using fn_type = std::decay_t<F>;
        const remote_function& rf = lookup(fn_type(f));
        using job = redis_imap_job<V>;
        return ref_ptr<job>(
            new job(rf, redis_encoding<typename remote_signature<fn_type>::args, false>{}, inputs,
                    chunksize, ordered));
    }

    // What redis_pool adds to the Pool interface (see redis_pool.hpp).
    bool cancel(const std::string& id);
    redis_queue_counts counts();
    std::vector<redis_failed_job> failed_jobs();
    std::size_t requeue_failed();
    const std::string& queue() const noexcept;

private:
    template <class F>
    static constexpr void check_function() {
        static_assert(remote_signature<F>::valid,
                      "corio::redis_pool: the function must be a plain function registered with "
                      "CORIO_REMOTE(fn) or corio::register_function(name, fn)");
    }

    template <class Fn>
    static const remote_function& lookup(Fn fn) {
        if (fn == nullptr) {
            throw error("corio::redis_pool: the function pointer is null");
        }
        const remote_function* rf = find_remote(reinterpret_cast<std::uintptr_t>(fn));
        if (rf == nullptr) {
            throw error("corio::redis_pool: this function is not registered: add "
                        "CORIO_REMOTE(fn) in the client and the worker programs");
        }
        return *rf;
    }

    const map_progress::progress_fn* progress_ = nullptr;
    std::size_t chunksize_ = 0;
};

} // namespace corio::detail
