// redis_pool's non-template part: one thread with an event loop and two Redis
// connections. The sender pipelines ENQUEUE scripts for every job submitted since its
// last write; the reader receives this client's results from its own stream with
// XREAD BLOCK and completes the waiting results. Every job stays in `pending_` (with its
// payload) until its result arrived, so after a lost connection everything still
// pending is enqueued again: enqueueing is idempotent by job id, and a Redis that lost
// its data gets the jobs back.

#include "decode.hpp"
#include "protocol.hpp"

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

    std::string submit(const std::string& fn, std::string payload, redis_sink& sink,
                       std::size_t chunk) {
        std::string id;
        bool wake = false;
        {
            std::lock_guard lock(mutex_);
            if (closed_ || terminated_) {
                throw pool_not_running();
            }
            id = client_id_ + ":" + std::to_string(++next_id_);
            pending_.emplace(id, pending_job{fn, std::move(payload), &sink, chunk});
            to_send_.push_back(id);
            wake = !send_posted_;
            send_posted_ = true;
        }
        if (wake) {
            loop_->call_soon_threadsafe([this] { send_wake_.set(); });
        }
        return id;
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

    void terminate() noexcept {
        std::vector<std::pair<std::string, pending_job>> abandoned;
        {
            std::lock_guard lock(mutex_);
            if (terminated_) {
                return;
            }
            terminated_ = true;
            closed_ = true;
            for (auto& [id, job] : pending_) {
                abandoned.emplace_back(id, job);
            }
            pending_.clear();
            to_send_.clear();
        }
        idle_cv_.notify_all();
        std::vector<std::string> ids;
        for (auto& [id, job] : abandoned) {
            ids.push_back(id);
            job.sink->abandon();
            job.sink->release_sink();
        }
        if (!ids.empty()) {
            try {
                run_blocking([this, &ids]() { return cancel_all(ids); });
            } catch (...) {
                // Best effort: the results are already failed; unreachable Redis keeps the
                // jobs, whose results then expire unread.
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
        std::string fn;
        std::string payload;
        redis_sink* sink = nullptr;
        std::size_t chunk = 0;
    };

    // Runs a coroutine made by `make` on the pool's loop and blocks until it ends.
    template <class Make>
    void run_blocking(Make make) {
        if (std::this_thread::get_id() == thread_.get_id()) {
            throw error("corio::redis_pool: a blocking call from the pool's own thread");
        }
        {
            std::lock_guard lock(mutex_);
            if (stopped_) {
                throw pool_not_running();
            }
        }
        std::promise<void> done;
        auto f = done.get_future();
        loop_->call_soon_threadsafe(
            [this, &make, &done] { loop_->create_task(wrap(make(), &done), "redis_pool call"); });
        f.get();
    }

    static task<> wrap(task<> t, std::promise<void>* done) {
        try {
            co_await std::move(t);
            done->set_value();
        } catch (...) {
            done->set_exception(std::current_exception());
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
                    cmds.push_back({"EVALSHA", scripts_.enqueue.sha(), "0", id, options_.queue,
                                    it->second.fn, it->second.payload, stream_,
                                    std::to_string(options_.result_ttl.count()),
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
            job = std::move(it->second);
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
        job.sink->deliver(job.chunk, status == "ok" ? std::string_view(data) : std::string_view(),
                          whole);
        job.sink->release_sink();
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
        stopping_ = true;
        send_wake_.set();
        read_.close();
        cmd_.close();
        send.cancel();
        recv.cancel();
        co_await gather_settled(std::move(send), std::move(recv));
    }

    void thread_main(std::promise<void>& started) {
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
    }

    void stop_thread() noexcept {
        if (!thread_.joinable()) {
            return;
        }
        bool post = false;
        {
            std::lock_guard lock(mutex_);
            post = !stopped_;
        }
        if (post) {
            loop_->call_soon_threadsafe([this] { stop_.set(); });
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

    std::thread thread_;
    event_loop* loop_ = nullptr;
};

} // namespace corio::detail

namespace corio {

redis_pool::redis_pool(std::string url, redis_pool_options options)
    : core_(std::make_unique<detail::redis_pool_core>(std::move(url), std::move(options))) {}

redis_pool::~redis_pool() {
    try {
        close();
        join();
    } catch (...) {
    }
}

std::string redis_pool::submit_(const std::string& fn, std::string payload,
                                detail::redis_sink& sink, std::size_t chunk) {
    return core_->submit(fn, std::move(payload), sink, chunk);
}
void redis_pool::check_running_() const {
    core_->check_running();
}
const std::function<void(std::size_t, std::size_t)>* redis_pool::progress_() const noexcept {
    return core_->options().on_progress ? &core_->options().on_progress : nullptr;
}
std::size_t redis_pool::chunksize_for_(std::size_t n) const noexcept {
    if (core_->options().chunksize != 0) {
        return core_->options().chunksize;
    }
    return n / 64 + (n % 64 != 0 ? 1 : 0);
}
void redis_pool::close() noexcept {
    core_->close();
}
void redis_pool::terminate() noexcept {
    core_->terminate();
}
void redis_pool::join() {
    core_->join();
}
bool redis_pool::cancel(const std::string& id) {
    return core_->cancel(id);
}
redis_queue_counts redis_pool::counts() {
    return core_->counts();
}
std::vector<redis_failed_job> redis_pool::failed_jobs() {
    return core_->failed_jobs();
}
std::size_t redis_pool::requeue_failed() {
    return core_->requeue_failed();
}
const std::string& redis_pool::queue() const noexcept {
    return core_->options().queue;
}

} // namespace corio
