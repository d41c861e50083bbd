// redis_pool's non-template part: one thread with an event loop and two Redis
// connections. The sender pipelines ENQUEUE scripts for every job submitted since its
// last write; the reader receives this client's results from its own stream with
// XREAD BLOCK and completes the waiting results. Every job stays in `pending_` (with its
// payload) until its result arrived, so after a lost connection everything still
// pending is enqueued again: enqueueing is idempotent by job id, and a Redis that lost
// its data gets the jobs back.

#include "decode.hpp"
#include "protocol.hpp"

#include "pool/backend_core.hpp"

#include <corio/combinators.hpp>
#include <corio/event_loop.hpp>
#include <corio/redis_pool.hpp>
#include <corio/sleep.hpp>
#include <corio/sync.hpp>

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

namespace corio::detail {

namespace proto = redis_protocol;

// No KEYS: the scripts name their keys themselves (one Redis, not a cluster).
const std::vector<std::string> no_keys;

class redis_pool_core {
public:
    redis_pool_core(std::string url, redis_pool_options options)
        : url_(std::move(url)), options_(std::move(options)) {
        display_ = redis::url::parse(url_).display();
        char host[256] = {};
        ::gethostname(host, sizeof host - 1);
        std::random_device rd;
        char tag[32];
        std::snprintf(tag, sizeof tag, "%08x", rd());
        client_id_ = std::string(host) + ":" + std::to_string(::getpid()) + ":" + tag;
        stream_ = "corio:results:" + client_id_;
        std::promise<void> started;
        auto ready = started.get_future();
        thread_ = std::thread([this, p = std::move(started)]() mutable { thread_main(p); });
        try {
            ready.get();
        } catch (...) {
            thread_.join();
            throw;
        }
    }

    ~redis_pool_core() { stop_thread(); }

    const redis_pool_options& options() const noexcept { return options_; }

    /// True on the pool's loop thread (callbacks run there).
    bool on_own_thread() const noexcept {
        return std::this_thread::get_id() == loop_thread_id_.load(std::memory_order_acquire);
    }

    // Every chunk of one job, all or nothing; each chunk's reference passes to pending_.
    void submit(redis_batch batch) {
        redis_job& job = *batch.job;
        const std::size_t chunks = job.chunk_count();
        std::lock_guard lock(mutex_);
        if (closed_ || terminated_) {
            throw pool_not_running();
        }
        std::size_t k = 0;
        try {
            pending_.reserve(pending_.size() + chunks);
            to_send_.reserve(to_send_.size() + chunks);
            for (; k < chunks; ++k) {
                std::string id = client_id_ + ":" + std::to_string(next_id_ + k + 1);
                job.set_id(k, id);
                pending_.emplace(id, pending_job{&job, k});
                to_send_.push_back(std::move(id));
            }
        } catch (...) {
            for (std::size_t i = 0; i < k; ++i) {
                pending_.erase(job.id(i));
            }
            to_send_.resize(to_send_.size() - k);
            throw;
        }
        next_id_ += chunks;
        if (!send_posted_) {
            send_posted_ = true;
            // Under the lock: the loop cannot stop while a chunk is pending.
            loop_->call_soon_threadsafe([this] { send_wake_.set(); });
        }
    }

    void check_running() const {
        std::lock_guard lock(mutex_);
        if (closed_ || terminated_) {
            throw pool_not_running();
        }
    }

    void close() noexcept {
        std::lock_guard lock(mutex_);
        closed_ = true;
    }

    // Fails every pending result with pool_terminated, then cancels the jobs in Redis
    // (best effort: the results are failed already; an unreachable Redis keeps the jobs,
    // whose results then expire unread) and stops the loop. From the pool's own thread (a
    // callback) it only starts that and returns; join() waits for it.
    void terminate() noexcept {
        std::vector<std::pair<std::string, pending_job>> abandoned;
        {
            std::lock_guard lock(mutex_);
            if (terminated_) {
                return;
            }
            terminated_ = true;
            closed_ = true;
            abandoned.reserve(pending_.size());
            for (auto& [id, job] : pending_) {
                abandoned.emplace_back(id, job);
            }
            pending_.clear();
            to_send_.clear();
        }
        idle_cv_.notify_all();
        std::vector<std::string> ids;
        ids.reserve(abandoned.size());
        for (auto& [id, job] : abandoned) {
            ids.push_back(id);
            job.job->on_terminated();
            job.job->drop();
        }
        if (on_own_thread()) {
            loop_->create_task(cancel_then_stop(std::move(ids)), "redis_pool terminate");
            return;
        }
        if (!ids.empty()) {
            try {
                run_blocking([this, &ids]() { return cancel_all(ids); });
            } catch (...) {
            }
        }
        stop_thread();
    }

    void join() {
        {
            std::unique_lock lock(mutex_);
            if (!closed_ && !terminated_) {
                throw invalid_state_error(
                    "corio::redis_pool: join() before close() or terminate()");
            }
            idle_cv_.wait(lock, [&] { return pending_.empty(); });
        }
        stop_thread();
    }

    bool cancel(const std::string& id) {
        std::string before;
        run_blocking([this, &id, &before]() { return cancel_one(id, &before); });
        return before == "queued" || before == "started";
    }

    redis_queue_counts counts() {
        redis_queue_counts c;
        run_blocking([this, &c]() { return read_counts(&c); });
        return c;
    }

    std::vector<redis_failed_job> failed_jobs() {
        std::vector<redis_failed_job> out;
        run_blocking([this, &out]() { return read_failed(&out); });
        return out;
    }

    std::size_t requeue_failed() {
        std::size_t n = 0;
        run_blocking([this, &n]() { return do_requeue(&n); });
        return n;
    }

private:
    struct pending_job {
        redis_job* job = nullptr; // holds one reference for this chunk
        std::size_t chunk = 0;
    };

    // Runs a coroutine made by `make` on the pool's loop and blocks until it ends.
    template <class Make>
    void run_blocking(Make make) {
        if (on_own_thread()) { // not thread_.get_id(): join() may write thread_ meanwhile
            throw error("corio::redis_pool: a blocking call from the pool's own thread");
        }
        std::promise<void> done;
        auto f = done.get_future();
        {
            // Under the lock: the loop's stop waits for every call counted here.
            std::lock_guard lock(mutex_);
            if (stopped_) {
                throw pool_not_running();
            }
            ++calls_;
            loop_->call_soon_threadsafe([this, &make, &done] {
                loop_->create_task(run_call(make(), &done), "redis_pool call");
            });
        }
        f.get();
    }

    // One blocking call on the loop. A call that the pool's stop overtook (not started,
    // or its connection closed under it) fails with pool_not_running, not with the
    // closed connection's redis::error.
    task<> run_call(task<> t, std::promise<void>* done) {
        std::exception_ptr err;
        if (stopping_) {
            err = std::make_exception_ptr(pool_not_running());
        } else {
            try {
                co_await std::move(t);
            } catch (...) {
                err = stopping_ ? std::make_exception_ptr(pool_not_running())
                                : std::current_exception();
            }
        }
        bool last = false;
        {
            std::lock_guard lock(mutex_);
            last = --calls_ == 0 && stopped_;
        }
        if (last) {
            calls_done_.set();
        }
        if (err) {
            done->set_exception(err);
        } else {
            done->set_value();
        }
    }

    task<> ensure_connected() {
        if (cmd_.is_open() && read_.is_open()) {
            co_return;
        }
        cmd_.close();
        read_.close();
        const redis::connection_options co{.connect_timeout = options_.connect_timeout};
        cmd_ = co_await redis::connection::connect(url_, co);
        read_ = co_await redis::connection::connect(url_, co);
        co_await cmd_.load(scripts_.enqueue);
    }

    // Reconnects with exponential backoff (50 ms to 2 s) until it succeeds or the pool
    // stops; then every pending job is sent again.
    task<> reconnect() {
        auto delay = std::chrono::milliseconds(50);
        while (!stopping_) {
            try {
                co_await ensure_connected();
                std::lock_guard lock(mutex_);
                to_send_.clear();
                for (auto& [id, job] : pending_) {
                    to_send_.push_back(id);
                }
                send_wake_.set();
                co_return;
            } catch (const redis::error&) {
            }
            co_await sleep(delay);
            delay = std::min(delay * 2, std::chrono::milliseconds(2000));
        }
    }

    task<> sender() {
        while (!stopping_) {
            co_await send_wake_.wait();
            send_wake_.clear();
            std::vector<std::vector<std::string>> cmds;
            {
                std::lock_guard lock(mutex_);
                send_posted_ = false;
                for (const std::string& id : to_send_) {
                    auto it = pending_.find(id);
                    if (it == pending_.end()) {
                        continue; // already answered (a resend after a reconnect)
                    }
                    const redis_job& job = *it->second.job;
                    cmds.push_back({"EVALSHA", scripts_.enqueue.sha(), "0", id, options_.queue,
                                    job.function(), std::string(job.payload(it->second.chunk)),
                                    stream_, std::to_string(options_.result_ttl.count()),
                                    std::to_string(options_.max_retries),
                                    std::to_string(options_.job_timeout.count()),
                                    std::to_string(options_.lease.count())});
                }
                to_send_.clear();
            }
            if (cmds.empty() || stopping_) {
                continue;
            }
            try {
                auto replies = co_await cmd_.pipeline(std::move(cmds));
                for (const auto& r : replies) {
                    if (r.is_error()) {
                        // NOSCRIPT after a restart the reader has not noticed yet: drop the
                        // connection, the reconnect loads the script and resends all.
                        cmd_.close();
                        break;
                    }
                }
            } catch (const redis::error&) {
            }
            if (!cmd_.is_open()) {
                read_.close(); // the reader notices and runs the reconnect
            }
        }
    }

    void deliver(const std::string& id, const std::string& status, const std::string& data) {
        pending_job job;
        {
            std::lock_guard lock(mutex_);
            auto it = pending_.find(id);
            if (it == pending_.end()) {
                return; // a second result of a rerun, or of a terminated job: dropped
            }
            job = it->second;
            pending_.erase(it);
        }
        std::exception_ptr whole;
        if (status == "error") {
            try {
                byte_reader r(data);
                whole = read_remote_exception(r);
            } catch (...) {
                whole = std::current_exception();
            }
        } else if (status == "lost") {
            whole = std::make_exception_ptr(worker_lost_error(data));
        } else if (status == "cancelled") {
            whole = std::make_exception_ptr(
                cancelled_error("corio::redis_pool: job " + id + " was cancelled"));
        } else if (status == "timeout") {
            whole = std::make_exception_ptr(timeout_error(data));
        } else if (status != "ok") {
            whole = std::make_exception_ptr(
                error("corio::redis_pool: unknown status '" + status + "' for job " + id));
        }
        if (whole) {
            job.job->on_chunk_failed(job.chunk, std::move(whole));
        } else {
            job.job->on_chunk(job.chunk, data);
        }
        job.job->drop();
        bool idle = false;
        {
            std::lock_guard lock(mutex_);
            idle = pending_.empty();
        }
        if (idle) {
            idle_cv_.notify_all();
        }
    }

    task<> reader() {
        while (!stopping_) {
            try {
                if (!read_.is_open() || !cmd_.is_open()) {
                    co_await reconnect();
                    continue;
                }
                redis::reply r = co_await read_.command("XREAD", "COUNT", 1000, "BLOCK", 0,
                                                        "STREAMS", stream_, last_id_);
                if (r.is_nil()) {
                    continue;
                }
                redis_decode::for_each_stream_entry(
                    r, [this](const std::string& entry_id) { last_id_ = entry_id; },
                    [this](const std::string& id, const std::string& status,
                           const std::string& data) { deliver(id, status, data); });
                // Entries before the last one read are done with.
                co_await cmd_.command("XTRIM", stream_, "MINID", last_id_);
            } catch (const redis::error&) {
                if (stopping_) {
                    co_return;
                }
                read_.close();
                cmd_.close();
            }
        }
    }

    task<> cancel_all(std::vector<std::string>& ids) {
        co_await ensure_connected();
        co_await cmd_.load(scripts_.cancel);
        std::vector<std::vector<std::string>> cmds;
        for (const auto& id : ids) {
            cmds.push_back({"EVALSHA", scripts_.cancel.sha(), "0", id});
        }
        co_await cmd_.pipeline(std::move(cmds));
    }

    task<> cancel_then_stop(std::vector<std::string> ids) {
        try {
            if (!ids.empty()) {
                co_await cancel_all(ids);
            }
        } catch (...) {
        }
        stop_.set();
    }

    task<> cancel_one(const std::string& id, std::string* before) {
        co_await ensure_connected();
        const std::vector<std::string> args = {id};
        redis::reply r = co_await cmd_.evalsha(scripts_.cancel, no_keys, args);
        *before = r.str();
    }

    task<> read_counts(redis_queue_counts* c) {
        co_await ensure_connected();
        const std::vector<std::string> args = {options_.queue};
        redis::reply r = co_await cmd_.evalsha(scripts_.counts, no_keys, args);
        c->queued = static_cast<std::size_t>(r[0].integer());
        c->started = static_cast<std::size_t>(r[1].integer());
        c->finished = static_cast<std::size_t>(r[2].integer());
        c->failed = static_cast<std::size_t>(r[3].integer());
        c->dead = static_cast<std::size_t>(r[4].integer());
    }

    task<> read_failed(std::vector<redis_failed_job>* out) {
        co_await ensure_connected();
        const std::vector<std::string> args = {options_.queue};
        redis::reply r = co_await cmd_.evalsha(scripts_.failed, no_keys, args);
        for (const auto& e : r.elements()) {
            out->push_back(redis_decode::decode_failed_job(e));
        }
    }

    task<> do_requeue(std::size_t* n) {
        co_await ensure_connected();
        const std::vector<std::string> args = {options_.queue};
        redis::reply r = co_await cmd_.evalsha(scripts_.requeue_failed, no_keys, args);
        *n = static_cast<std::size_t>(r.integer());
    }

    task<> main_task(std::promise<void>* started) {
        try {
            co_await ensure_connected();
        } catch (...) {
            started->set_exception(std::current_exception());
            co_return;
        }
        started->set_value();
        future<void> send = create_task(sender(), "redis_pool sender");
        future<void> recv = create_task(reader(), "redis_pool reader");
        co_await stop_.wait();
        bool calls = false;
        {
            std::lock_guard lock(mutex_);
            stopped_ = true; // no more blocking calls; those counted end first
            calls = calls_ != 0;
        }
        stopping_ = true;
        send_wake_.set();
        read_.close();
        cmd_.close();
        send.cancel();
        recv.cancel();
        co_await gather_settled(std::move(send), std::move(recv));
        if (calls) {
            co_await calls_done_.wait();
        }
    }

    void thread_main(std::promise<void>& started) {
        loop_thread_id_.store(std::this_thread::get_id(), std::memory_order_release);
        event_loop loop;
        loop_ = &loop;
        loop.run_until_complete(main_task(&started));
        {
            std::lock_guard lock(mutex_);
            stopped_ = true;
        }
        cmd_ = redis::connection();
        read_ = redis::connection();
        loop.close();
        loop_thread_id_.store(std::thread::id(), std::memory_order_release);
    }

    // Stops the loop and joins its thread; concurrent and repeated calls return once
    // it is joined. Never on the loop's thread.
    void stop_thread() noexcept {
        std::lock_guard join_lock(join_mutex_);
        if (!thread_.joinable()) {
            return;
        }
        {
            // Under the lock: the loop is not closed before it took the call.
            std::lock_guard lock(mutex_);
            if (!stopped_) {
                loop_->call_soon_threadsafe([this] { stop_.set(); });
            }
        }
        thread_.join();
    }

    std::string url_;
    std::string display_;
    redis_pool_options options_;
    std::string client_id_;
    std::string stream_;
    std::string last_id_ = "0-0";
    proto::scripts scripts_;
    redis::connection cmd_;
    redis::connection read_;
    event send_wake_;
    event stop_;
    bool stopping_ = false; // loop thread only

    mutable std::mutex mutex_;
    std::condition_variable idle_cv_;
    std::unordered_map<std::string, pending_job> pending_;
    std::vector<std::string> to_send_;
    std::uint64_t next_id_ = 0;
    bool send_posted_ = false;
    bool closed_ = false;
    bool terminated_ = false;
    bool stopped_ = false;
    std::size_t calls_ = 0; // blocking calls posted to the loop and not finished
    event calls_done_;      // set when the last of them finished after stopped_

    std::mutex join_mutex_; // serializes stop_thread()
    std::thread thread_;
    std::atomic<std::thread::id> loop_thread_id_{}; // the loop's thread while it runs
    event_loop* loop_ = nullptr;
};

template class backend_core<redis_pool_core>;

redis_backend::redis_backend(std::string url, redis_pool_options options)
    : backend_core(std::make_unique<redis_pool_core>(std::move(url), std::move(options))) {
    const redis_pool_options& o = core_->options();
    progress_ = o.on_progress ? &o.on_progress : nullptr;
    chunksize_ = o.chunksize;
}

redis_backend::~redis_backend() = default;

void redis_backend::submit(redis_batch batch) {
    core_->submit(batch);
}
bool redis_backend::cancel(const std::string& id) {
    return core_->cancel(id);
}
redis_queue_counts redis_backend::counts() {
    return core_->counts();
}
std::vector<redis_failed_job> redis_backend::failed_jobs() {
    return core_->failed_jobs();
}
std::size_t redis_backend::requeue_failed() {
    return core_->requeue_failed();
}
const std::string& redis_backend::queue() const noexcept {
    return core_->options().queue;
}

} // namespace corio::detail

namespace corio {

redis_pool::redis_pool(std::string url, redis_pool_options options)
    : basic_pool(std::in_place, std::move(url), std::move(options)) {}

bool redis_pool::cancel(const std::string& id) {
    return backend().cancel(id);
}
redis_queue_counts redis_pool::counts() {
    return backend().counts();
}
std::vector<redis_failed_job> redis_pool::failed_jobs() {
    return backend().failed_jobs();
}
std::size_t redis_pool::requeue_failed() {
    return backend().requeue_failed();
}
const std::string& redis_pool::queue() const noexcept {
    return backend().queue();
}

} // namespace corio
