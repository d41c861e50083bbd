// redis_worker: takes jobs with the FETCH script (or BLMOVE when the queue is empty),
// runs them on a process_pool of its own (or a thread_pool), renews their leases and
// its alive key with a heartbeat that also runs the reaper, and reports each outcome
// with the COMPLETE script. A job is in Redis (the worker's in-flight list, a lease)
// from the moment it is taken until its result is written; a worker that dies leaves
// it to the reaper.

#include "decode.hpp"
#include "protocol.hpp"

#include <corio/combinators.hpp>
#include <corio/detail/process_wire.hpp>
#include <corio/event_loop.hpp>
#include <corio/process_pool.hpp>
#include <corio/redis_pool.hpp>
#include <corio/sleep.hpp>
#include <corio/sync.hpp>
#include <corio/thread_pool.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <variant>

namespace corio::detail {

namespace proto = redis_protocol;

// No KEYS: the scripts name their keys themselves (one Redis, not a cluster).
const std::vector<std::string> no_keys;

using job_outcome = std::tuple<std::string, std::uint32_t, std::string, std::string>;

// Runs in the pool (a worker process or a thread): decodes the job's items, calls the
// registered function on each and encodes the outcomes.
job_outcome run_remote_job(std::string fn, std::string payload, std::string pidfile) {
    if (!pidfile.empty()) {
        // Tells the worker which process to kill on cancel or timeout.
        if (FILE* f = std::fopen(pidfile.c_str(), "w")) {
            std::fprintf(f, "%d", static_cast<int>(::getpid()));
            std::fclose(f);
        }
    }
    const remote_function* rf = find_remote(fn);
    if (rf == nullptr) {
        throw error("corio::redis_worker: no function is registered as '" + fn +
                    "' in this worker program (add CORIO_REMOTE(" + fn + ") to it)");
    }
    byte_reader in(payload);
    std::uint32_t count = 0;
    in.read(&count, sizeof count);
    byte_writer out;
    remote_failure failure;
    rf->runner(rf->fn, count, in, out, failure);
    if (in.remaining() != 0) {
        throw serialize_error("corio::redis_worker: the job's bytes for '" + fn +
                              "' do not decode (" + std::to_string(in.remaining()) +
                              " bytes left over)");
    }
    return {out.take(), failure.failed, failure.type_name, failure.message};
}

namespace {

template <class T>
task<T> await_result(async_result<T> r) {
    co_return co_await r;
}

task<> wait_event(event& e) {
    co_await e.wait();
}

std::string make_worker_id() {
    static std::atomic<unsigned> counter{0};
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    return std::string(host) + ":" + std::to_string(::getpid()) + ":" +
           std::to_string(counter.fetch_add(1));
}

} // namespace

class redis_worker_core {
public:
    redis_worker_core(std::string url, redis_worker_options options)
        : url_(std::move(url)), options_(std::move(options)), id_(make_worker_id()) {
        (void)redis::url::parse(url_); // a malformed URL fails here
        if (options_.queues.empty()) {
            throw error("corio::redis_worker: no queue to serve");
        }
        if (options_.concurrency == 0) {
            options_.concurrency = cpu_count();
        }
        if (options_.heartbeat.count() <= 0) {
            throw error("corio::redis_worker: the heartbeat must be positive");
        }
        if (options_.handle_signals) {
            // Held from now on: a SIGTERM that arrives before run() installed its
            // handlers stays pending (instead of killing the process) and run()'s
            // signalfd reads it.
            sigset_t stop_signals;
            sigemptyset(&stop_signals);
            sigaddset(&stop_signals, SIGTERM);
            sigaddset(&stop_signals, SIGINT);
            pthread_sigmask(SIG_BLOCK, &stop_signals, &saved_mask_);
            restore_mask_ = true;
        }
    }
    redis_worker_core(const redis_worker_core&) = delete;
    redis_worker_core& operator=(const redis_worker_core&) = delete;
    ~redis_worker_core() {
        if (restore_mask_) {
            pthread_sigmask(SIG_SETMASK, &saved_mask_, nullptr);
        }
    }

    const std::string& id() const noexcept { return id_; }
    std::size_t jobs_done() const noexcept { return done_.load(std::memory_order_relaxed); }

    void stop() noexcept {
        stop_requested_.store(true);
        if (event_loop* l = loop_.load()) {
            l->call_soon_threadsafe([this] { wake_stop(); });
        }
    }

    void run() {
        event_loop loop;
        if (options_.handle_signals) {
            loop.add_signal_handler(SIGTERM, [this] { stop(); });
            loop.add_signal_handler(SIGINT, [this] { stop(); });
        }
        loop.run_until_complete(serve());
    }

    task<> serve() {
        event_loop& loop = get_running_loop();
        stop_event_.emplace();
        slot_freed_.emplace();
        idle_.emplace();
        loop_.store(&loop);
        struct reset {
            redis_worker_core* self;
            ~reset() { self->loop_.store(nullptr); }
        } guard{this};
        if (stop_requested_.load()) {
            co_return;
        }
        co_await connect();
        if (options_.use_processes) {
            char tmpl[] = "/tmp/corio-worker-XXXXXX";
            if (::mkdtemp(tmpl) != nullptr) {
                piddir_ = tmpl;
            }
            process_pool_.emplace(options_.concurrency);
        } else {
            thread_pool_.emplace(options_.concurrency);
        }
        future<void> beat = create_task(heartbeat(), "redis_worker heartbeat");
        std::exception_ptr failure;
        try {
            co_await fetch_loop();
            co_await drain();
        } catch (...) {
            failure = std::current_exception();
        }
        stopping_ = true;
        beat.cancel();
        co_await gather_settled(std::move(beat));
        co_await shutdown();
        if (failure) {
            std::rethrow_exception(failure);
        }
    }

private:
    struct running_job {
        std::string pidfile;
        bool finished = false; // its outcome was reported (or handed back)
        bool cancelled = false;
        bool timed_out = false;
    };

    void wake_stop() {
        if (stop_event_) {
            stop_event_->set();
        }
        if (slot_freed_) {
            slot_freed_->set();
        }
        fetch_.close(); // ends a blocking BLMOVE
    }

    task<> connect() {
        const redis::connection_options co{.connect_timeout = std::chrono::milliseconds(5000)};
        cmd_ = co_await redis::connection::connect(url_, co);
        fetch_ = co_await redis::connection::connect(url_, co);
    }

    task<> reconnect() {
        auto delay = std::chrono::milliseconds(50);
        while (!stop_requested_.load()) {
            try {
                cmd_.close();
                fetch_.close();
                co_await connect();
                co_return;
            } catch (const redis::error&) {
            }
            co_await sleep(delay);
            delay = std::min(delay * 2, std::chrono::milliseconds(2000));
        }
    }

    std::vector<std::string> running_ids() const {
        std::vector<std::string> ids;
        for (const auto& [id, job] : running_) {
            if (!job.finished) {
                ids.push_back(id);
            }
        }
        return ids;
    }

    std::string alive_ms() const { return std::to_string(3 * options_.heartbeat.count()); }

    task<> fetch_loop() {
        while (!stop_requested_.load()) {
            const std::size_t busy = running_.size();
            if (busy >= options_.concurrency) {
                slot_freed_->clear();
                co_await slot_freed_->wait();
                continue;
            }
            try {
                if (!cmd_.is_open()) {
                    co_await reconnect();
                    continue;
                }
                std::vector<std::string> args = {id_, alive_ms(),
                                                 std::to_string(options_.concurrency - busy)};
                args.insert(args.end(), options_.queues.begin(), options_.queues.end());
                redis::reply jobs = co_await cmd_.evalsha(scripts_.fetch, no_keys, args);
                if (jobs.size() == 0) {
                    if (!fetch_.is_open()) {
                        co_await reconnect();
                        continue;
                    }
                    // Nothing ready: block on the first queue (the others are polled
                    // by FETCH every second).
                    const std::string& q = options_.queues.front();
                    redis::reply id = co_await fetch_.command(
                        "BLMOVE", "corio:{" + q + "}:ready", "corio:inflight:" + id_, "RIGHT",
                        "LEFT", options_.queues.size() == 1 ? "1" : "0.2");
                    if (id.is_nil()) {
                        continue;
                    }
                    const std::vector<std::string> sargs = {id_, id.str()};
                    jobs = co_await cmd_.evalsha(scripts_.start, no_keys, sargs);
                }
                for (const auto& j : jobs.elements()) {
                    start_job(j);
                }
            } catch (const redis::error&) {
                if (stop_requested_.load()) {
                    break;
                }
                cmd_.close();
                fetch_.close();
            }
        }
    }

    void start_job(const redis::reply& j) {
        redis_decode::fetched_job job = redis_decode::decode_job(j);
        running_job& rj = running_[job.id];
        if (!piddir_.empty()) {
            rj.pidfile = piddir_ + "/" + std::to_string(++pid_counter_);
        }
        create_task(run_job(job.id, std::move(job.function), std::move(job.payload), rj.pidfile,
                            job.timeout_ms),
                    "redis job " + job.id);
    }

    task<job_outcome> submit(std::string fn, std::string payload, std::string pidfile) {
        if (process_pool_) {
            co_return co_await await_result(process_pool_->apply_async(
                &run_remote_job, std::move(fn), std::move(payload), std::move(pidfile)));
        }
        co_return co_await await_result(thread_pool_->apply_async(
            &run_remote_job, std::move(fn), std::move(payload), std::string()));
    }

    void kill_job(const running_job& rj) {
        if (rj.pidfile.empty()) {
            return;
        }
        std::ifstream in(rj.pidfile);
        int pid = 0;
        if (in >> pid && pid > 1) {
            ::kill(pid, SIGKILL); // the pool replaces the process
        }
    }

    task<> run_job(std::string id, std::string fn, std::string payload, std::string pidfile,
                   long long timeout_ms) {
        std::string status = "ok", data, etype, emsg;
        bool failed = false;
        try {
            job_outcome out;
            if (timeout_ms > 0) {
                out = co_await wait_for(submit(fn, std::move(payload), pidfile),
                                        std::chrono::milliseconds(timeout_ms));
            } else {
                out = co_await submit(fn, std::move(payload), pidfile);
            }
            data = std::move(std::get<0>(out));
            failed = std::get<1>(out) != 0;
            etype = std::move(std::get<2>(out));
            emsg = std::move(std::get<3>(out));
        } catch (const timeout_error&) {
            auto it = running_.find(id);
            if (it != running_.end()) {
                it->second.timed_out = true;
                kill_job(it->second);
            }
            status = "timeout";
            etype = "corio::timeout_error";
            emsg = data = "corio::redis_worker: job " + id + " (" + fn + ") ran longer than " +
                          std::to_string(timeout_ms) + " ms";
        } catch (...) {
            byte_writer w;
            remote_failure f;
            record_remote_failure(w, f);
            status = "error";
            data = w.take();
            etype = f.type_name;
            emsg = f.message;
        }
        auto it = running_.find(id);
        if (it != running_.end() && it->second.cancelled) {
            status = "cancelled";
            data.clear();
        }
        if (it != running_.end() && !it->second.finished) {
            it->second.finished = true;
            co_await report(id, status, data, etype, emsg, failed);
        }
        if (!pidfile.empty()) {
            ::unlink(pidfile.c_str());
        }
        running_.erase(id);
        done_.fetch_add(1, std::memory_order_relaxed);
        slot_freed_->set();
        if (running_.empty()) {
            idle_->set();
        }
    }

    // Writes an outcome; retried across reconnects so that a dropped connection does
    // not lose it (if Redis lost the job meanwhile, the client resubmits it).
    task<> report(const std::string& id, const std::string& status, const std::string& data,
                  const std::string& etype, const std::string& emsg, bool failed) {
        const std::vector<std::string> args = {
            id_, id, status, data, etype, emsg, failed ? "1" : "0"};
        for (int attempt = 0; attempt < 50; ++attempt) {
            try {
                if (!cmd_.is_open()) {
                    co_await reconnect();
                }
                co_await cmd_.evalsha(scripts_.complete, no_keys, args);
                co_return;
            } catch (const redis::error&) {
                cmd_.close();
            }
            if (stop_requested_.load() && attempt > 3) {
                co_return; // the lease / reaper gives the job to another worker
            }
            co_await sleep(std::chrono::milliseconds(100));
        }
    }

    task<> heartbeat() {
        std::mt19937_64 rng(std::random_device{}());
        for (;;) {
            try {
                if (cmd_.is_open()) {
                    std::vector<std::string> args = {id_, alive_ms()};
                    for (auto& id : running_ids()) {
                        args.push_back(id);
                    }
                    redis::reply cancel = co_await cmd_.evalsha(scripts_.heartbeat, no_keys, args);
                    for (const auto& c : cancel.elements()) {
                        auto it = running_.find(c.str());
                        if (it != running_.end()) {
                            it->second.cancelled = true;
                            kill_job(it->second);
                        }
                    }
                    const std::vector<std::string> rargs = {
                        id_, std::to_string(std::max<long long>(1, options_.heartbeat.count() / 2)),
                        std::to_string(rng() % 1000000007ULL)};
                    co_await cmd_.evalsha(scripts_.reap, no_keys, rargs);
                }
            } catch (const redis::error&) {
                cmd_.close(); // the fetch loop reconnects
            }
            co_await sleep(options_.heartbeat);
        }
    }

    // After stop: running jobs get the grace period, then are killed and handed back.
    task<> drain() {
        if (!running_.empty()) {
            idle_->clear();
            try {
                co_await wait_for(wait_event(*idle_), options_.grace);
            } catch (const timeout_error&) {
            }
        }
        std::vector<std::string> left = running_ids();
        for (const auto& id : left) {
            running_[id].finished = true; // handed back, not reported
        }
        if (!left.empty() && process_pool_) {
            process_pool_->terminate();
        }
        std::vector<std::string> args = {id_};
        args.insert(args.end(), left.begin(), left.end());
        for (int attempt = 0; attempt < 5; ++attempt) {
            try {
                if (!cmd_.is_open()) {
                    co_await connect();
                }
                co_await cmd_.evalsha(scripts_.release, no_keys, args);
                break;
            } catch (const redis::error&) {
                cmd_.close();
            }
            co_await sleep(std::chrono::milliseconds(100));
        }
        // The jobs' tasks end once the terminated pool fails their results.
        while (!running_.empty()) {
            idle_->clear();
            co_await idle_->wait();
        }
    }

    task<> shutdown() {
        fetch_.close();
        cmd_.close();
        if (process_pool_) {
            process_pool_->terminate();
            process_pool_.reset();
        }
        if (thread_pool_) {
            thread_pool_->close();
            thread_pool_.reset(); // joins: a job still running in a thread is waited for
        }
        if (!piddir_.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(piddir_, ec);
        }
        co_return;
    }

    std::string url_;
    redis_worker_options options_;
    std::string id_;
    proto::scripts scripts_;
    redis::connection cmd_;
    redis::connection fetch_;
    std::optional<process_pool> process_pool_;
    std::optional<thread_pool> thread_pool_;
    std::map<std::string, running_job> running_;
    std::string piddir_;
    std::uint64_t pid_counter_ = 0;
    std::optional<event> stop_event_;
    std::optional<event> slot_freed_;
    std::optional<event> idle_;
    bool stopping_ = false;
    std::atomic<bool> stop_requested_{false};
    std::atomic<event_loop*> loop_{nullptr};
    std::atomic<std::size_t> done_{0};
    sigset_t saved_mask_{};
    bool restore_mask_ = false;
};

} // namespace corio::detail

namespace corio {

redis_worker::redis_worker(std::string url, redis_worker_options options)
    : core_(std::make_unique<detail::redis_worker_core>(std::move(url), std::move(options))) {}
redis_worker::~redis_worker() = default;
void redis_worker::run() {
    core_->run();
}
task<> redis_worker::serve() {
    return core_->serve();
}
void redis_worker::stop() noexcept {
    core_->stop();
}
const std::string& redis_worker::id() const noexcept {
    return core_->id();
}
std::size_t redis_worker::jobs_done() const noexcept {
    return core_->jobs_done();
}

} // namespace corio
