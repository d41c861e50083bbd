#pragma once
// A minimal intrusive circular doubly-linked list hook (sentinel-based).

namespace corio::detail {

struct list_hook {
    list_hook* prev = this;
    list_hook* next = this;
    void* owner = nullptr; // the object this hook is embedded in

    bool linked() const noexcept { return next != this; }
    bool empty() const noexcept { return next == this; }
    void push_back(list_hook& n) noexcept {
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

} // namespace corio::detail
