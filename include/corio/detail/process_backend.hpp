#pragma once
// The process backend of basic_pool (see basic_pool.hpp for the backend interface) and
// the work it sends: one job per apply_async / map_async / imap. A job holds the
// encoded frames of its chunks, ready to send (built once, by the caller's thread),
// and decodes the answers into its result. After submission only the dispatcher thread
// touches a job (it is also the pool's result thread), except that a submitting thread
// that finds a worker idle sends the frame of a one-chunk job itself before handing
// the chunk to the dispatcher (the direct path).
//
// Reference protocol: every chunk that is queued, in flight at a worker or waiting to
// be retried holds one reference to its job (taken by basic_pool at submission,
// `drop()` once the chunk was answered, failed or abandoned).

#include <corio/async_result.hpp>
#include <corio/detail/backend_core.hpp>
#include <corio/detail/pool_jobs.hpp>
#include <corio/detail/process_wire.hpp>
#include <corio/imap_result.hpp>
#include <corio/pool.hpp>
#include <corio/serialize.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace corio::detail {

class process_job;
class process_pool_core;

/// The batch `process_backend::submit` queues: every chunk of one job.
struct process_batch {
    process_job* job = nullptr;
    std::size_t chunks = 0;
};

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
    /// What basic_pool submits: all chunks of this job.
    process_batch batch() noexcept { return {this, chunk_count()}; }

    /// Dispatcher: the answer to chunk `k`, one outcome per item.
    virtual void on_chunk(std::size_t k, byte_reader& outcomes) noexcept = 0;
    /// Dispatcher: chunk `k` failed as a whole (its worker died, the pool broke).
    virtual void on_chunk_failed(std::size_t k, std::exception_ptr e) noexcept = 0;
    /// The pool was terminated before the job finished (idempotent).
    virtual void on_terminated() noexcept = 0;
    /// Drops the reference of one chunk (the concrete job is reference counted).
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
        for (; first != last; ++first) {
            serialize(w, *first);
        }
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
class process_apply_job final : public sent_apply_job<R, CB, ECB, process_job> {
public:
    template <class Tuple>
    process_apply_job(call_target target, const Tuple& args, CB cb, ECB ecb)
        : sent_apply_job<R, CB, ECB, process_job>(std::move(cb), std::move(ecb)) {
        byte_writer w;
        const std::size_t at = begin_frame(w, frame_kind::task, 0, 1);
        w.write_raw(target);
        w.write_raw(std::uint8_t{0});
        std::apply([&](const auto&... a) { serialize(w, to_wire(a)...); }, args);
        finish_frame(w, at);
        this->frames_ = w.take();
        this->offsets_.push_back(this->frames_.size());
    }

    void on_chunk(std::size_t, byte_reader& r) noexcept override {
        std::exception_ptr err;
        try {
            if (r.read_raw<std::uint8_t>() == 0) {
                if constexpr (!std::is_void_v<R>) {
                    this->slot().emplace(deserialize<R>(r));
                }
            } else {
                err = read_exception(r);
            }
        } catch (...) {
            err = std::current_exception();
        }
        this->complete(std::move(err));
    }
};

/// One map / starmap (the worker stops a chunk at its first exception).
template <class V, class CB, class ECB>
class process_map_job final : public sent_map_job<V, CB, ECB, process_job> {
public:
    template <class In>
    process_map_job(call_target target, const std::vector<In>& inputs, std::size_t chunksize,
                    const map_progress::progress_fn* progress, CB cb, ECB ecb)
        : sent_map_job<V, CB, ECB, process_job>(inputs.size(), chunksize, progress, std::move(cb),
                                                std::move(ecb)) {
        this->add_chunks(target, true, inputs, chunksize);
    }

    void on_chunk(std::size_t k, byte_reader& r) noexcept override {
        auto& map = this->map_;
        try {
            for (std::size_t i = map.begin_of(k), e = map.end_of(k); i < e; ++i) {
                if (r.read_raw<std::uint8_t>() != 0) {
                    map.results().fail(read_exception(r));
                    break; // the worker skipped the rest of the chunk
                }
                map.results().set(i, deserialize<V>(r));
            }
        } catch (...) {
            map.results().fail(std::current_exception());
        }
        map.chunk_finished(*this, k);
    }
};

/// One imap / imap_unordered.
template <class V>
class process_imap_job final : public sent_imap_job<V, process_job> {
public:
    template <class In>
    process_imap_job(call_target target, const std::vector<In>& inputs, std::size_t chunksize,
                     bool ordered)
        : sent_imap_job<V, process_job>(inputs.size(), chunksize, ordered) {
        this->add_chunks(target, false, inputs, chunksize);
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
            for (; i < e; ++i) {
                this->set_item_error(i, std::current_exception());
            }
        }
        this->chunk_done(k);
    }
};

/// The call target of a map's elements `In` (unpacked for starmap).
template <class F, class In, bool Star>
call_target map_call_target(const F& f) {
    if constexpr (Star) {
        return [&]<std::size_t... I>(std::index_sequence<I...>) {
            return make_call_target<F, true, std::decay_t<std::tuple_element_t<I, In>>...>(f);
        }
        (std::make_index_sequence<std::tuple_size_v<In>>{});
    } else {
        return make_call_target<F, true, In>(f);
    }
}

/// How many chunks callers have sent to an idle worker themselves (the direct path of
/// docs/process_pool.md, "Transport"), summed over every process pool of the process;
/// for tests and benchmarks.
std::uint64_t process_pool_direct_sends() noexcept;

/// How many idle workers a sleeping dispatcher offers to callers right now, summed
/// over every process pool of the process. The dispatcher withdraws its offers each
/// time it wakes and makes them again before it sleeps, so a call made just after an
/// answer may find none and go through the queue; tests wait for an offer here to
/// make the direct path certain.
std::size_t process_pool_open_offers() noexcept;

/// The process backend of `basic_pool` (the contract is in basic_pool.hpp): worker
/// processes forked from the fork server, fed over sockets by one dispatcher thread
/// (src/process/). The function must be a plain function or a capture-less lambda;
/// arguments and results cross the process boundary through `corio::serialize`.
/// **Thread safety:** as basic_pool's.
class process_backend : public backend_core<process_pool_core> {
public:
    /// Starts the workers and waits until each ran the initializer.
    process_backend(std::size_t workers, pool_options options);
    ~process_backend();

    std::size_t size() const noexcept { return workers_; }
    const map_progress::progress_fn* progress() const noexcept;
    /// Queues every chunk of one job (basic_pool took their references).
    void submit(process_batch batch);
    /// Process ids of the current workers.
    std::vector<pid_t> pids() const;

    template <class F, class... A>
    static constexpr void check_apply() {
        check_process_function<F>();
        static_assert((serializable<wire_type_t<A>> && ...),
                      "corio::process_pool: every argument must be serializable (see "
                      "corio/serialize.hpp)");
        static_assert(std::is_invocable_v<F&, wire_type_t<A>&...>,
                      "corio: f is not callable with these arguments");
    }
    template <class F, class... A>
    using apply_result = decoded_result_t<F, wire_type_t<A>...>;
    template <class F, class In, bool Star>
    static constexpr void check_map() {
        check_process_function<F>();
        static_assert(serializable<In>, "corio::process_pool: the range's elements must be "
                                        "serializable (see corio/serialize.hpp)");
        static_assert(serializable<map_value_t<typename map_call_result<F, In, Star>::type>>,
                      "corio::process_pool: the function's result must be serializable (see "
                      "corio/serialize.hpp)");
    }

    template <class R, class... A, class F, class Tuple, class CB, class ECB>
    auto make_apply_job(F&& f, Tuple&& args, CB cb, ECB ecb) {
        static_assert(std::is_void_v<R> || serializable<R>,
                      "corio::process_pool: the function's result must be serializable (see "
                      "corio/serialize.hpp)");
        using fn_type = std::decay_t<F>;
        const fn_type fn = f;
        check_pointer(fn);
        check_running();
        using job = process_apply_job<R, CB, ECB>;
        return ref_ptr<job>(new job(make_call_target<fn_type, true, wire_type_t<A>...>(fn), args,
                                    std::move(cb), std::move(ecb)));
    }
    template <class V, bool Star, class F, class In, class CB, class ECB>
    auto make_map_job(F&& f, std::vector<In> inputs, std::size_t chunksize, CB cb, ECB ecb) {
        using fn_type = std::decay_t<F>;
        const fn_type fn = f;
        check_pointer(fn);
        using job = process_map_job<V, CB, ECB>;
        return ref_ptr<job>(new job(map_call_target<fn_type, In, Star>(fn), inputs, chunksize,
                                    progress(), std::move(cb), std::move(ecb)));
    }
    template <class V, class F, class In>
    auto make_imap_job(F&& f, std::vector<In> inputs, std::size_t chunksize, bool ordered) {
        using fn_type = std::decay_t<F>;
        const fn_type fn = f;
        check_pointer(fn);
        using job = process_imap_job<V>;
        return ref_ptr<job>(
            new job(map_call_target<fn_type, In, false>(fn), inputs, chunksize, ordered));
    }

private:
    template <class Fn>
    static void check_pointer(const Fn& f) {
        if constexpr (std::is_pointer_v<Fn>) {
            if (f == nullptr) {
                throw error("corio::process_pool: the function pointer is null");
            }
        }
    }

    std::size_t workers_;
};

} // namespace corio::detail
