#pragma once
/// \file task_group.hpp
/// `corio::task_group` (asyncio.TaskGroup) and `corio::exception_group`.

#include <corio/detail/combinator_scope.hpp>
#include <corio/error.hpp>
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/source_location.hpp>
#include <corio/task.hpp>

#include <cstddef>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace corio {

/// Several exceptions at once (Python's ExceptionGroup): thrown by
/// `task_group::join()` when two or more children (or children and the group body)
/// failed. `exceptions()` lists them in the order they happened; `what()` joins
/// their messages.
/// **Thread safety:** immutable after construction; copies share the list.
class exception_group : public error {
public:
    /// Groups `exceptions` (non-null, usually two or more).
    explicit exception_group(std::vector<std::exception_ptr> exceptions)
        : error(describe(exceptions)),
          exceptions_(
              std::make_shared<const std::vector<std::exception_ptr>>(std::move(exceptions))) {}

    /// The grouped exceptions, in the order they happened.
    const std::vector<std::exception_ptr>& exceptions() const noexcept { return *exceptions_; }

private:
    static std::string describe(const std::vector<std::exception_ptr>& es) {
        std::string m = "corio: " + std::to_string(es.size()) + " exceptions in a task group";
        const char* sep = ": ";
        for (const auto& e : es) {
            m += sep;
            sep = "; ";
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                m += x.what();
            } catch (...) {
                m += "unknown exception";
            }
        }
        return m;
    }
    std::shared_ptr<const std::vector<std::exception_ptr>> exceptions_;
};

/// A scope of concurrently running child tasks (asyncio.TaskGroup):
/// `task_group group; group.spawn(t); co_await group.join();`.
///
/// - `spawn` starts a child task at once; children may be spawned while the group
///   runs, including by children and while `join()` waits.
/// - The first child failure (an exception other than cancelled_error) cancels the
///   other children and, unless it is already waiting in `join()`, the group body:
///   the task that created the group gets cancelled_error at its current suspension
///   point. A body that wants the children's exceptions catches it and passes it on:
///   `try { body } catch (...) { e = std::current_exception(); } co_await group.join(e);`
/// - `join()` waits until no child runs, then: no failure -> returns; exactly one
///   failure -> rethrows it as itself; two or more -> throws `exception_group` with
///   all of them. The failures counted are, in the order they happened, every child
///   exception that is not a cancelled_error, then the body exception passed to
///   `join(e)` if it is not a cancelled_error. A cancelled_error the group itself
///   caused in the body is dropped; a cancel from outside (of the body or of the task
///   waiting in `join()`) cancels every child and, when there is no failure, makes
///   `join()` throw cancelled_error once the children finished.
/// - After `join()` the group is finished: `spawn` throws corio::error.
/// - A group destroyed without `join()` (for example because the body threw) cancels
///   its running children (they finish on the loop, which owns them; nothing is
///   detached silently), and reports the failures it had collected through the
///   loop's exception handler; later child failures are reported by the loop as
///   never retrieved.
/// **Thread safety:** loop thread only; the group and its children share one loop.
class task_group {
public:
    /// A group on the running loop, owned by the running task (its "body").
    /// Throws corio::error if no loop runs.
    task_group()
        : scope_(detail::combinator_scope::make(get_running_loop(), detail::scope_policy::group)) {
        scope_->set_owner(current_task());
    }
    task_group(const task_group&) = delete;
    task_group& operator=(const task_group&) = delete;

    /// Cancels the children still running (see the class comment); never waits.
    ~task_group() {
        scope_->set_orphaned();
        if (scope_->running() > 0) {
            scope_->cancel_children();
        }
        for (const std::exception_ptr& e : scope_->errors()) {
            scope_->loop().call_exception_handler(
                {"task_group destroyed before join(): child exception never retrieved", e,
                 scope_owner_name()});
        }
    }

    /// Starts `aw` as a child task of the group and returns its future (which the
    /// caller may drop). `name` defaults to "<spawning task>/task_group[n]". Throws
    /// corio::error after `join()` completed. A child spawned after a failure is
    /// cancelled at once (it still runs its cleanup and is awaited by `join()`).
    template <class A>
    requires detail::combinator_awaitable<A> future<detail::child_result_t<A>>
    spawn(A aw, std::string name = {},
          corio::source_location where = corio::source_location::current()) {
        if (joined_) {
            throw error("corio: spawn on a task_group that was already joined");
        }
        if (name.empty()) {
            name = detail::child_name("task_group", spawned_);
        }
        ++spawned_;
        return scope_->template spawn<detail::child_result_t<A>>(std::move(aw), std::move(name),
                                                                 where);
    }

    /// Waits until every child finished, then returns or throws (see the class
    /// comment for the exact rule). `body_error` is the exception the group body
    /// ended with, if any: a non-cancellation one cancels the children and joins the
    /// failures. Waiting is structured: a cancel of the waiting task cancels the
    /// children and still waits for them.
    [[nodiscard]] task<> join(std::exception_ptr body_error = nullptr) {
        if (body_error) {
            if (detail::is_cancellation(body_error)) {
                if (scope_->owner_cancel_requested() && !own_cancel_consumed_) {
                    own_cancel_consumed_ = true; // our own doing: dropped
                } else {
                    external_cancel_ = true;
                    scope_->abort();
                }
            } else {
                scope_->errors().push_back(std::move(body_error));
                scope_->abort();
            }
        }
        return join_body(this);
    }

    /// The number of children still running.
    std::size_t size() const noexcept { return scope_->running(); }

private:
    static task<> join_body(task_group* g) {
        detail::combinator_scope& s = *g->scope_;
        detail::task_root* root = co_await detail::current_root_awaiter{};
        const bool owner_joins = current_task() == s.owner();
        // A cancel the group itself requested of the body but that is still pending
        // is consumed here: the children's failure is what join reports.
        if (root != nullptr && owner_joins && s.owner_cancel_requested() &&
            !g->own_cancel_consumed_ && root->cancel_pending()) {
            root->take_pending_cancel();
            g->own_cancel_consumed_ = true;
        }
        s.set_owner_joining(owner_joins);
        // Re-check after every wake-up: a child may be spawned between the moment the
        // last one finished and the moment we run again.
        while (s.running() > 0) {
            co_await detail::scope_wait(s);
        }
        s.set_owner_joining(false);
        g->finish_join();
    }

    void finish_join() {
        joined_ = true;
        std::vector<std::exception_ptr> errors = std::move(scope_->errors());
        scope_->errors().clear();
        if (errors.size() == 1) {
            std::rethrow_exception(errors.front());
        }
        if (errors.size() > 1) {
            throw exception_group(std::move(errors));
        }
        if (external_cancel_ || scope_->parent_cancelled()) {
            throw cancelled_error();
        }
    }
    std::string scope_owner_name() const {
        const task_handle& o = scope_->owner();
        return o ? o.name() : std::string();
    }

    detail::scope_ref scope_;
    std::size_t spawned_ = 0;
    bool joined_ = false;
    bool external_cancel_ = false;
    bool own_cancel_consumed_ = false;
};

} // namespace corio
