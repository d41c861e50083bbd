#pragma once
// Coroutine frames and task states are allocated and freed at a high rate (one of
// each per task). They come from here:
//
//  * Size classes of 16 bytes up to 1 KiB; larger blocks go to operator new.
//  * Blocks are carved from 256 KiB slabs (aligned to their size, mapped with mmap
//    and unmapped when empty, so idle memory goes back to the system at once), so a
//    block pays no malloc header and no rounding beyond 16 bytes, and a burst of
//    tasks costs one mapping per slab.
//  * Each thread keeps a free list per class, capped at `max_cached_bytes` in all.
//    A block freed on another thread than the one that carved it joins the freeing
//    thread's list. A block freed while the list is full, and every cached block at
//    thread exit, is released to its slab.
//  * A slab counts its blocks that are not released (atomically: they can be
//    released on any thread). The thread that carves from a slab holds it until the
//    slab is full; once that is dropped and every block is released, the slab is
//    unmapped. So a thread's memory is returned when it exits, except
//    slabs still holding live blocks, which go when their last block is released.
//    A block that outlives a burst keeps its 256 KiB slab allocated, and a thread
//    batches its count-downs to one slab, so one slab per thread may wait for the
//    thread's next release elsewhere (or its exit).
//  * A thread's slabs after its first are prefaulted with one madvise each (a burst
//    of tasks otherwise pays a page fault per 4 KiB).

//  * Under AddressSanitizer every block is its own operator new, freed at once, so
//    that a use after free or an overflow of a frame or a task state is caught.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define CORIO_DETAIL_FRAMES_UNPOOLED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORIO_DETAIL_FRAMES_UNPOOLED 1
#endif
#endif
#ifndef CORIO_DETAIL_FRAMES_UNPOOLED
#define CORIO_DETAIL_FRAMES_UNPOOLED 0
#endif

namespace corio::detail {

class frame_allocator {
public:
    static constexpr std::size_t granule = 16;
    static constexpr std::size_t classes = 64; // up to 1 KiB
    static constexpr std::size_t max_block = granule * classes;
    static constexpr std::size_t slab_size = std::size_t{256} * 1024;
    /// What a thread keeps in its free lists at most, all classes together.
    static constexpr std::size_t max_cached_bytes = std::size_t{1} << 20;

    /// True when blocks are not pooled (AddressSanitizer builds).
    static constexpr bool unpooled = CORIO_DETAIL_FRAMES_UNPOOLED != 0;

    static void* allocate(std::size_t n) {
        if (!unpooled && n <= max_block) {
            std::size_t c = class_of(n);
            thread_cache& t = cache_;
            if (block* b = t.heads[c]) {
                t.heads[c] = b->next;
                t.cached -= size_of(c);
                return b;
            }
            return carve(size_of(c));
        }
        return ::operator new(n);
    }

    static void deallocate(void* p, std::size_t n) noexcept {
        if (!unpooled && n <= max_block) {
            std::size_t c = class_of(n);
            thread_cache& t = cache_;
            // limit is 0 until the thread's cache is set up and after it is torn down.
            if (t.cached + size_of(c) <= t.limit) {
                auto* b = static_cast<block*>(p);
                b->next = t.heads[c];
                t.heads[c] = b;
                t.cached += size_of(c);
                return;
            }
            deallocate_slow(p, c);
            return;
        }
        ::operator delete(p);
    }

    /// Slabs allocated and not yet returned, all threads together (for tests).
    static std::size_t live_slabs() noexcept { return slabs_.load(std::memory_order_relaxed); }

private:
    struct block {
        block* next;
    };
    struct slab_header {
        std::atomic<std::size_t> live;
    };
    // Trivially destructible, so that the hot path needs no TLS guard; the teardown
    // at thread exit is registered on the slow path (see frame_allocator.cpp).
    struct thread_cache {
        block* heads[classes];
        std::size_t cached;
        std::size_t limit;
        char* bump; // next free byte of the current slab
        char* end;  // end of the current slab
        slab_header* slab;
        std::size_t carved; // blocks carved from the current slab
        std::size_t slabs_carved;
        // Releases not yet counted down on their slab: blocks freed in a row mostly
        // come from one slab, so they are counted down together.
        slab_header* releasing;
        std::size_t released;
        bool dead; // torn down: release every block at once
    };

    static constexpr std::size_t class_of(std::size_t n) noexcept { return (n - 1) / granule; }
    static constexpr std::size_t size_of(std::size_t c) noexcept { return (c + 1) * granule; }

    static void* carve(std::size_t size);
    static void deallocate_slow(void* p, std::size_t c) noexcept;

    friend struct frame_allocator_access;
    static inline constinit thread_local thread_cache cache_{};
    static inline constinit std::atomic<std::size_t> slabs_{0};
};

/// A base that allocates its derived objects with frame_allocator (task states,
/// thread-pool jobs): a block from a per-thread free list instead of a malloc round
/// trip (the deleting destructor passes the most derived type's size). Over-aligned
/// types take the aligned global forms, which the class-scope lookup would otherwise
/// skip. Coroutine promises declare their own pair: the frame's deallocation lookup
/// must find exactly one usual sized form.
struct slab_allocated {
    static void* operator new(std::size_t n) { return frame_allocator::allocate(n); }
    static void operator delete(void* p, std::size_t n) noexcept {
        frame_allocator::deallocate(p, n);
    }
    static void* operator new(std::size_t n, std::align_val_t al) { return ::operator new(n, al); }
    static void operator delete(void* p, std::size_t n, std::align_val_t al) noexcept {
        (void)n;
        ::operator delete(p, al);
    }
};

} // namespace corio::detail
