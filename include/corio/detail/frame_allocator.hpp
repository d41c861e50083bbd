#pragma once
// Coroutine frames are allocated and freed at a high rate (one per task). A small
// per-thread free list per size class recycles them, which keeps a direct
// `co_await` of a trivial task near the cost of a function call. Frames may be
// freed on another thread than the one that allocated them; they simply join that
// thread's list. Blocks above the largest class go to operator new.

#include <cstddef>
#include <new>

namespace corio::detail {

class frame_allocator {
public:
    static constexpr std::size_t granule = 64;
    static constexpr std::size_t classes = 16; // up to 1 KiB
    static constexpr std::size_t max_cached = 4096;

    static void* allocate(std::size_t n) {
        std::size_t c = class_of(n);
        if (c < classes) {
            auto& lists = local();
            if (block* b = lists.heads[c]) {
                lists.heads[c] = b->next;
                --lists.counts[c];
                return b;
            }
            return ::operator new((c + 1) * granule);
        }
        return ::operator new(n);
    }

    static void deallocate(void* p, std::size_t n) noexcept {
        std::size_t c = class_of(n);
        if (c < classes) {
            auto& lists = local();
            if (lists.counts[c] < max_cached) {
                auto* b = static_cast<block*>(p);
                b->next = lists.heads[c];
                lists.heads[c] = b;
                ++lists.counts[c];
                return;
            }
        }
        ::operator delete(p);
    }

private:
    struct block {
        block* next;
    };
    struct free_lists {
        block* heads[classes] = {};
        std::size_t counts[classes] = {};
        ~free_lists() {
            for (block* h : heads) {
                while (h != nullptr) {
                    block* next = h->next;
                    ::operator delete(h);
                    h = next;
                }
            }
        }
    };
    static std::size_t class_of(std::size_t n) noexcept { return (n - 1) / granule; }
    static free_lists& local() noexcept {
        static thread_local free_lists lists;
        return lists;
    }
};

} // namespace corio::detail
