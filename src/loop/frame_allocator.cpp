// The slow paths of detail::frame_allocator: carving blocks from slabs, releasing
// blocks to their slab, and the per-thread teardown (see frame_allocator.hpp).
#include <corio/detail/frame_allocator.hpp>

#include <cstdint>
#include <new>

#include <sys/mman.h>

namespace corio::detail {

struct frame_allocator_access {
    using fa = frame_allocator;
    // The slab header takes the first 64 bytes, which keeps blocks 16-byte aligned.
    static constexpr std::size_t header = 64;
    // The carving thread's hold on its current slab: more than a slab has blocks, so
    // the count cannot reach 0 before the hold is dropped (minus the blocks carved).
    static constexpr std::size_t hold = fa::slab_size;

    static fa::slab_header* slab_of(void* p) noexcept {
        return reinterpret_cast<fa::slab_header*>(reinterpret_cast<std::uintptr_t>(p) &
                                                  ~(std::uintptr_t{fa::slab_size} - 1));
    }
    // Slabs are mapped and unmapped directly, so a slab emptied after a burst goes
    // back to the system at once (from malloc's heap it would stay: glibc keeps
    // freed memory below the top of the heap, and raises its mmap threshold after
    // large frees). Over-map by one slab, then trim to the alignment.
    static fa::slab_header* new_slab(std::size_t live) {
        constexpr std::size_t size = fa::slab_size;
        void* raw =
            ::mmap(nullptr, 2 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == MAP_FAILED) {
            throw std::bad_alloc();
        }
        const auto start = reinterpret_cast<std::uintptr_t>(raw);
        const std::uintptr_t aligned = (start + size - 1) & ~(std::uintptr_t{size} - 1);
        if (aligned > start) {
            ::munmap(raw, aligned - start);
        }
        if (const std::uintptr_t tail = start + 2 * size - (aligned + size); tail > 0) {
            ::munmap(reinterpret_cast<void*>(aligned + size), tail);
        }
        fa::slabs_.fetch_add(1, std::memory_order_relaxed);
        return ::new (reinterpret_cast<void*>(aligned)) fa::slab_header{live};
    }
    // Drops k counts of the slab s; the last one frees it.
    static void drop(fa::slab_header* s, std::size_t k) noexcept {
        if (s->live.fetch_sub(k, std::memory_order_acq_rel) == k) {
            s->~slab_header();
            ::munmap(static_cast<void*>(s), fa::slab_size);
            fa::slabs_.fetch_sub(1, std::memory_order_relaxed);
        }
    }
    // Releases a block to its slab, batching the count-down with the thread's other
    // releases to the same slab.
    static void release(fa::thread_cache& t, void* p) noexcept {
        fa::slab_header* s = slab_of(p);
        if (s == t.releasing) {
            ++t.released;
            return;
        }
        flush_released(t);
        if (t.dead) {
            drop(s, 1);
            return;
        }
        t.releasing = s;
        t.released = 1;
    }
    static void flush_released(fa::thread_cache& t) noexcept {
        if (t.releasing != nullptr) {
            drop(t.releasing, t.released);
            t.releasing = nullptr;
            t.released = 0;
        }
    }

    static void retire_current(fa::thread_cache& t) noexcept {
        if (t.slab != nullptr) {
            drop(t.slab, hold - t.carved);
            t.slab = nullptr;
            t.bump = t.end = nullptr;
            t.carved = 0;
        }
    }

    static void tear_down() noexcept {
        fa::thread_cache& t = fa::cache_;
        for (fa::block*& head : t.heads) {
            while (head != nullptr) {
                fa::block* next = head->next;
                release(t, head);
                head = next;
            }
        }
        t.cached = 0;
        flush_released(t);
        retire_current(t);
        t.limit = 0;
        t.dead = true;
    }

    // Makes sure the thread's cache is released when the thread exits.
    static void set_up(fa::thread_cache& t) {
        struct reaper {
            reaper() = default;
            reaper(const reaper&) = delete;
            reaper& operator=(const reaper&) = delete;
            ~reaper() { tear_down(); }
        };
        static thread_local reaper r;
        static_cast<void>(r);
        t.limit = fa::max_cached_bytes;
    }
};

void* frame_allocator::carve(std::size_t size) {
    using access = frame_allocator_access;
    thread_cache& t = cache_;
    if (t.dead) [[unlikely]] {
        // After the thread's teardown (a frame made by a static destructor): a slab of
        // its own, released with the block.
        return reinterpret_cast<char*>(access::new_slab(1)) + access::header;
    }
    if (t.limit == 0) {
        access::set_up(t);
    }
    if (static_cast<std::size_t>(t.end - t.bump) < size) {
        slab_header* s = access::new_slab(access::hold);
        access::retire_current(t);
        t.slab = s;
        t.bump = reinterpret_cast<char*>(s) + access::header;
        t.end = reinterpret_cast<char*>(s) + slab_size;
        if (t.slabs_carved++ > 0) {
            // A burst of frames: fault the slab in with one call rather than a page
            // fault per 4 KiB. (Not the first slab, which a small program never fills.)
            // Advice only: an error (an older kernel) changes nothing.
            ::madvise(s, slab_size, MADV_POPULATE_WRITE);
        }
    }
    void* p = t.bump;
    t.bump += size;
    ++t.carved;
    return p;
}

void frame_allocator::deallocate_slow(void* p, std::size_t c) noexcept {
    using access = frame_allocator_access;
    thread_cache& t = cache_;
    if (t.limit == 0 && !t.dead) {
        // The first block this thread frees (it may never have allocated one).
        access::set_up(t);
        auto* b = static_cast<block*>(p);
        b->next = t.heads[c];
        t.heads[c] = b;
        t.cached += size_of(c);
        return;
    }
    access::release(t, p);
}

} // namespace corio::detail
