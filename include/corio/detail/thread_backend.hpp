#pragma once
// The thread backend of basic_pool (see basic_pool.hpp for the backend interface) and
// the work it runs: one `apply_job` per apply_async (one allocation from the slab
// allocator: the call, its arguments and the result slot), one `map_job` or `imap_job` per map (the
// inputs, one work_item per chunk and the result storage, each allocated once).
//
// Reference protocol: each work_item in the inbox or the queue, running on a worker, or waiting
// for the result thread holds one reference to its owner job. A worker releases the
// reference of the item it ran only after it replaced that item as its "current"
// item under the pool lock, so `terminate()` (which walks current items under that
// lock) never touches a freed job.

#include <corio/async_result.hpp>
#include <corio/detail/backend_core.hpp>
#include <corio/detail/frame_allocator.hpp>
#include <corio/detail/pool_jobs.hpp>
#include <corio/imap_result.hpp>
#include <corio/pool.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace corio::detail {

class thread_pool_core;
struct work_item;

/// What a pool does with a work_item; one static table per job type.
struct work_ops {
    /// On a worker: run the item. May hand it to the result thread with post_result.
    void (*execute)(work_item&, thread_pool_core&) noexcept;
    /// On the result thread: run callbacks / progress, then complete.
    void (*deliver)(work_item&) noexcept;
    /// On terminate(): the job will never complete; fail its waiters.
    void (*abandon)(work_item&) noexcept;
};

struct work_item {
    const work_ops* ops = nullptr;
    ref_counted* owner = nullptr;
    work_item* next = nullptr;
};

/// The batch `thread_backend::submit` queues: a linked run of work items.
struct work_batch {
    work_item* first = nullptr;
    work_item* last = nullptr;
    bool needs_result_thread = false; ///< callbacks or progress to run
};

/// Worker thread: queues `item` for the result thread (taking a new reference).
void post_result(thread_pool_core& core, work_item& item) noexcept;

/// The work items of a job's chunks, linked in order.
template <class Chunk>
std::unique_ptr<Chunk[]> make_chunks(std::size_t count, const work_ops* ops, ref_counted* owner) {
    auto chunks = std::make_unique<Chunk[]>(count);
    for (std::size_t k = 0; k < count; ++k) {
        chunks[k].ops = ops;
        chunks[k].owner = owner;
        chunks[k].index = k;
        chunks[k].next = k + 1 < count ? &chunks[k + 1] : nullptr;
    }
    return chunks;
}

/// A work item that knows which chunk of its job it is.
struct chunk_item : work_item {
    std::size_t index = 0;
};

/// The exception a call threw, kept for the result thread; nothing when there is no
/// callback (the worker completes the result itself).
template <bool Keep>
struct pending_error {
    std::exception_ptr value;
};
template <>
struct pending_error<false> {};

/// One apply_async: the call, its copied arguments and the result.
template <class R, class CB, class ECB, class F, class... Args>
class apply_job final : public result_state<R>, public slab_allocated {
public:
    template <class Fw, class Tuple>
    apply_job(Fw&& f, Tuple&& args, CB cb, ECB ecb) : callbacks_{std::move(cb), std::move(ecb)} {
        std::apply(
            [&](auto&&... a) {
                call_.emplace(std::forward<Fw>(f), std::forward<decltype(a)>(a)...);
            },
            std::forward<Tuple>(args));
        item_.ops = &ops;
        item_.owner = this;
    }

    std::size_t chunk_count() const noexcept { return 1; }
    work_batch batch() noexcept { return {&item_, &item_, callbacks_.any}; }

private:
    static apply_job& self(work_item& w) noexcept { return *static_cast<apply_job*>(w.owner); }

    static void execute(work_item& w, thread_pool_core& core) noexcept {
        apply_job& j = self(w);
        std::exception_ptr err;
        try {
            auto invoke = [](auto&&... x) -> decltype(auto) {
                return std::invoke(std::forward<decltype(x)>(x)...);
            };
            if constexpr (std::is_void_v<R>) {
                std::apply(invoke, std::move(*j.call_));
            } else if constexpr (result_callbacks<CB, ECB>::any) {
                j.slot().emplace(std::apply(invoke, std::move(*j.call_)));
            } else {
                j.set_value(std::apply(invoke, std::move(*j.call_)));
            }
        } catch (...) {
            err = std::current_exception();
        }
        j.call_.reset(); // drop captured state as soon as the call returned
        if constexpr (result_callbacks<CB, ECB>::any) {
            j.pending_error_.value = std::move(err);
            post_result(core, w);
        } else if (err) {
            j.set_exception(std::move(err));
        } else if constexpr (std::is_void_v<R>) {
            j.set_value();
        }
    }

    static void deliver(work_item& w) noexcept {
        apply_job& j = self(w);
        if constexpr (result_callbacks<CB, ECB>::any) {
            j.callbacks_.complete(j, std::move(j.pending_error_.value));
        }
    }

    static void abandon(work_item& w) noexcept { self(w).set_terminated(); }

    static constexpr work_ops ops{&execute, &deliver, &abandon};

    work_item item_;
    std::optional<std::tuple<F, Args...>> call_;
    result_callbacks<CB, ECB> callbacks_;
    // Written by the worker, read by the result thread.
    [[no_unique_address]] pending_error<result_callbacks<CB, ECB>::any> pending_error_;
};

/// One map / starmap: the inputs, the chunk items and the result vector.
/// A chunk stops at its first exception; the first exception to arrive fails the
/// map once every chunk finished.
template <class V, class CB, class ECB, class F, class In, bool Star>
class map_job final : public result_state<std::vector<V>>, public slab_allocated {
public:
    template <class Fw>
    map_job(Fw&& f, std::vector<In> inputs, std::size_t chunksize,
            const map_progress::progress_fn* progress, CB cb, ECB ecb)
        : fn_(std::forward<Fw>(f)), inputs_(std::move(inputs)), results_(inputs_.size()),
          chunksize_(chunksize), chunk_count_((inputs_.size() + chunksize - 1) / chunksize),
          chunks_(make_chunks<chunk_item>(chunk_count_, &ops, this)), remaining_(chunk_count_),
          progress_(progress, inputs_.size()), callbacks_{std::move(cb), std::move(ecb)} {}

    std::size_t chunk_count() const noexcept { return chunk_count_; }
    work_batch batch() noexcept {
        return {&chunks_[0], &chunks_[chunk_count_ - 1],
                callbacks_.any || static_cast<bool>(progress_)};
    }

private:
    static map_job& self(work_item& w) noexcept { return *static_cast<map_job*>(w.owner); }

    std::size_t begin_of(std::size_t k) const noexcept { return k * chunksize_; }
    std::size_t end_of(std::size_t k) const noexcept {
        return std::min(results_.size(), (k + 1) * chunksize_);
    }

    static void execute(work_item& w, thread_pool_core& core) noexcept {
        map_job& j = self(w);
        const std::size_t k = static_cast<chunk_item&>(w).index;
        try {
            for (std::size_t i = j.begin_of(k), e = j.end_of(k); i < e; ++i) {
                j.results_.set(i, call_map_value<Star, V>(j.fn_, std::move(j.inputs_[i])));
            }
        } catch (...) {
            j.results_.fail(std::current_exception());
        }
        if (j.progress_) {
            post_result(core, w); // the result thread counts and reports progress
        } else if (j.remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            if constexpr (result_callbacks<CB, ECB>::any) {
                post_result(core, w);
            } else {
                j.results_.finish(j, j.callbacks_);
            }
        }
    }

    static void deliver(work_item& w) noexcept {
        map_job& j = self(w);
        if (j.progress_) {
            const std::size_t k = static_cast<chunk_item&>(w).index;
            if (std::exception_ptr e = j.progress_.report(j.end_of(k) - j.begin_of(k), j.done())) {
                j.results_.fail(std::move(e));
            }
            if (++j.chunks_reported_ != j.chunk_count_) {
                return;
            }
        }
        j.results_.finish(j, j.callbacks_);
    }

    static void abandon(work_item& w) noexcept { self(w).set_terminated(); }

    static constexpr work_ops ops{&execute, &deliver, &abandon};

    F fn_;
    std::vector<In> inputs_;
    map_results<V> results_;
    const std::size_t chunksize_;
    const std::size_t chunk_count_;
    std::unique_ptr<chunk_item[]> chunks_;
    std::atomic<std::size_t> remaining_;
    map_progress progress_;           // result thread
    std::size_t chunks_reported_ = 0; // result thread
    result_callbacks<CB, ECB> callbacks_;
};

/// One imap / imap_unordered: the inputs, the chunk items and per-item outcomes.
template <class V, class F, class In>
class imap_job final : public imap_state<V>, public slab_allocated {
public:
    template <class Fw>
    imap_job(Fw&& f, std::vector<In> inputs, std::size_t chunksize, bool ordered)
        : imap_state<V>(inputs.size(), chunksize, ordered), fn_(std::forward<Fw>(f)),
          inputs_(std::move(inputs)),
          chunks_(make_chunks<chunk_item>(this->chunk_count(), &ops, this)) {}

    work_batch batch() noexcept { return {&chunks_[0], &chunks_[this->chunk_count() - 1], false}; }

private:
    static imap_job& self(work_item& w) noexcept { return *static_cast<imap_job*>(w.owner); }

    static void execute(work_item& w, thread_pool_core&) noexcept {
        imap_job& j = self(w);
        const std::size_t k = static_cast<chunk_item&>(w).index;
        const std::size_t b = k * j.chunksize();
        const std::size_t e = std::min(j.size(), b + j.chunksize());
        for (std::size_t i = b; i < e; ++i) {
            try {
                j.set_item(i, call_map_value<false, V>(j.fn_, std::move(j.inputs_[i])));
            } catch (...) {
                j.set_item_error(i, std::current_exception());
            }
        }
        j.chunk_done(k);
    }

    static void deliver(work_item&) noexcept {}

    static void abandon(work_item& w) noexcept { self(w).set_terminated(); }

    static constexpr work_ops ops{&execute, &deliver, &abandon};

    F fn_;
    std::vector<In> inputs_;
    std::unique_ptr<chunk_item[]> chunks_;
};

/// The thread backend of `basic_pool` (the contract is in basic_pool.hpp): worker
/// threads over one FIFO queue fed by a lock-free inbox, and a result thread, started by the first
/// call that has a callback or progress, that runs callbacks one at a time. Function objects and
/// arguments are copied (decayed) into the pool, as `std::thread` does.
/// **Thread safety:** as basic_pool's.
class thread_backend : public backend_core<thread_pool_core> {
public:
    /// Starts the threads; see basic_pool's constructor.
    thread_backend(std::size_t workers, pool_options options);
    ~thread_backend();

    std::size_t size() const noexcept { return workers_; }
    const map_progress::progress_fn* progress() const noexcept { return progress_; }
    /// Queues the chunks of one job (basic_pool took their references).
    void submit(work_batch batch);

    template <class F, class... A>
    static constexpr void check_apply() {
        static_assert(std::is_invocable_v<F, std::decay_t<A>...>,
                      "corio: f is not callable with these arguments (they are copied, as "
                      "std::thread does; use std::ref to pass a reference)");
    }
    template <class F, class... A>
    using apply_result = std::remove_cvref_t<std::invoke_result_t<F, std::decay_t<A>...>>;
    template <class F, class In, bool Star>
    static constexpr void check_map() {}

    template <class R, class... A, class F, class Tuple, class CB, class ECB>
    auto make_apply_job(F&& f, Tuple&& args, CB cb, ECB ecb) {
        using job = apply_job<R, CB, ECB, std::decay_t<F>, std::decay_t<A>...>;
        return ref_ptr<job>(
            new job(std::forward<F>(f), std::forward<Tuple>(args), std::move(cb), std::move(ecb)));
    }
    template <class V, bool Star, class F, class In, class CB, class ECB>
    auto make_map_job(F&& f, std::vector<In> inputs, std::size_t chunksize, CB cb, ECB ecb) {
        using job = map_job<V, CB, ECB, std::decay_t<F>, In, Star>;
        return ref_ptr<job>(new job(std::forward<F>(f), std::move(inputs), chunksize, progress_,
                                    std::move(cb), std::move(ecb)));
    }
    template <class V, class F, class In>
    auto make_imap_job(F&& f, std::vector<In> inputs, std::size_t chunksize, bool ordered) {
        using job = imap_job<V, std::decay_t<F>, In>;
        return ref_ptr<job>(new job(std::forward<F>(f), std::move(inputs), chunksize, ordered));
    }

private:
    std::size_t workers_;
    const map_progress::progress_fn* progress_ = nullptr;
};

} // namespace corio::detail
