#pragma once
// Minimal intrusive circular doubly-linked lists (sentinel-based).

namespace corio::detail {

/// A node (or the sentinel) of a circular list. Objects of one type can derive from
/// it, so that a node is a static_cast away from its object and costs two pointers.
struct list_link {
    list_link* prev = this;
    list_link* next = this;

    bool linked() const noexcept { return next != this; }
    bool empty() const noexcept { return next == this; }
    void push_back(list_link& n) noexcept {
        n.prev = prev;
        n.next = this;
        prev->next = &n;
        prev = &n;
    }
    void unlink() noexcept {
        prev->next = next;
        next->prev = prev;
        prev = next = this;
    }
};

/// A list_link held as a member, which knows the object it is embedded in.
struct list_hook : list_link {
    void* owner = nullptr; // the object this hook is embedded in

    /// The owner of the first hook after this sentinel (the list must not be empty).
    void* first_owner() const noexcept { return static_cast<const list_hook*>(next)->owner; }
};

} // namespace corio::detail
