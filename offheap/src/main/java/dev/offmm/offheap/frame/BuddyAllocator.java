package dev.offmm.offheap.frame;

import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.page.PageSize;

/**
 * A binary buddy allocator over the frames of one physical memory, orders 0 ..
 * {@link #MAX_ORDER}. Free blocks are kept in per-order doubly linked lists threaded through the
 * {@code next}/{@code prev} words of their head frame's mem_map record; a free head carries
 * {@link MemMap#PG_BUDDY} and its order in its flags. No Java object exists per block.
 *
 * <p>Every list operation runs under the zone lock ({@link ZoneLock}: it spins briefly, then
 * parks). Per-thread caches take it only to refill or drain a batch. A block's head flags are published with
 * release stores and read with acquire loads, because owners of allocated frames CAS them on
 * free (see {@link FrameAllocator}).
 */
public final class BuddyAllocator {
    /** The largest order: 2^9 frames = 2 MiB. */
    public static final int MAX_ORDER = PageSize.HUGE_ORDER;
    /** Returned when no frame is available. */
    public static final long NO_FRAME = -1;

    private static final long NIL = -1;

    private final MemMap map;
    private final long nrFrames;
    private final long[] heads = new long[MAX_ORDER + 1];
    private final long[] blocks = new long[MAX_ORDER + 1];
    private final ZoneLock zoneLock = new ZoneLock();
    /** Free frames; written under the zone lock, read racily by statistics. */
    private volatile long freeFrames;

    /**
     * Creates the allocator with every frame free except pfn 0 when {@code reserveFirst}.
     * {@code nrFrames} must be a multiple of 2^MAX_ORDER.
     */
    BuddyAllocator(MemMap map, long nrFrames, boolean reserveFirst) {
        this.map = map;
        this.nrFrames = nrFrames;
        java.util.Arrays.fill(heads, NIL);
        long blockFrames = 1L << MAX_ORDER;
        zoneLock.lock();
        try {
            for (long pfn = 0; pfn < nrFrames; pfn += blockFrames) {
                if (pfn == 0 && reserveFirst) {
                    map.setFlagsRelease(0, MemMap.PG_RESERVED);
                    map.setRefcountRelease(0, 1);
                    for (long f = 1; f < blockFrames; f++) {
                        freeLocked(f, 0);
                    }
                } else {
                    freeLocked(pfn, MAX_ORDER);
                }
            }
        } finally {
            zoneLock.unlock();
        }
    }

    /** Frames currently free in the buddy lists (not counting per-thread caches). */
    public long freeFrames() {
        return freeFrames;
    }

    /** Acquisitions of the zone lock that found it held, so far. */
    public long zoneLockContentions() {
        return zoneLock.contendedAcquisitions();
    }

    /** Free blocks of exactly {@code order}. */
    public long freeBlocks(int order) {
        zoneLock.lock();
        try {
            return blocks[order];
        } finally {
            zoneLock.unlock();
        }
    }

    /**
     * Allocates a naturally aligned block of 2^order frames and marks its head allocated with
     * refcount 1. Returns {@link #NO_FRAME} when no block of that order can be found.
     */
    long alloc(int order) {
        zoneLock.lock();
        try {
            long pfn = allocLocked(order);
            if (pfn != NO_FRAME) {
                markAllocated(pfn, order);
            }
            return pfn;
        } finally {
            zoneLock.unlock();
        }
    }

    /**
     * Takes up to {@code n} order-0 frames into {@code out[0..)}, marking each {@link MemMap#PG_PCP}
     * with refcount 1 (a cached frame keeps the count its next allocation hands out).
     * Returns how many were taken.
     */
    int allocBulk(long[] out, int n) {
        int got = 0;
        zoneLock.lock();
        try {
            while (got < n) {
                long pfn = allocLocked(0);
                if (pfn == NO_FRAME) {
                    break;
                }
                map.setRefcountRelease(pfn, 1);
                map.setFlagsRelease(pfn, MemMap.PG_PCP);
                out[got++] = pfn;
            }
        } finally {
            zoneLock.unlock();
        }
        return got;
    }

    /** Returns order-0 frames {@code pfns[from .. from+n)} (flags already cleared) to the lists. */
    void freeBulk(long[] pfns, int from, int n) {
        zoneLock.lock();
        try {
            for (int i = from; i < from + n; i++) {
                freeLocked(pfns[i], 0);
            }
        } finally {
            zoneLock.unlock();
        }
    }

    /** Returns a block whose head flags were already cleared by a successful free CAS. */
    void free(long pfn, int order) {
        zoneLock.lock();
        try {
            freeLocked(pfn, order);
        } finally {
            zoneLock.unlock();
        }
    }

    private void markAllocated(long pfn, int order) {
        map.setRefcountRelease(pfn, 1);
        // Release: pairs with the acquire/CAS of the freeing thread (FrameAllocator.free*).
        map.setFlagsRelease(pfn, MemMap.withOrder(MemMap.PG_ALLOCATED, order));
    }

    private long allocLocked(int order) {
        int o = order;
        while (o <= MAX_ORDER && heads[o] == NIL) {
            o++;
        }
        if (o > MAX_ORDER) {
            return NO_FRAME;
        }
        long pfn = heads[o];
        unlink(pfn, o);
        while (o > order) {
            o--;
            long half = pfn + (1L << o);
            push(half, o);
        }
        map.setFlagsRelease(pfn, 0);
        freeFrames -= 1L << order;
        return pfn;
    }

    private void freeLocked(long pfn, int order) {
        freeFrames += 1L << order;
        int o = order;
        long head = pfn;
        while (o < MAX_ORDER) {
            long buddy = head ^ (1L << o);
            if (buddy >= nrFrames || map.flagsAcquire(buddy) != MemMap.withOrder(MemMap.PG_BUDDY, o)) {
                break;
            }
            unlink(buddy, o);
            map.setFlagsRelease(buddy, 0);
            head = Math.min(head, buddy);
            o++;
        }
        push(head, o);
    }

    private void push(long pfn, int order) {
        long first = heads[order];
        map.setNextPlain(pfn, first);
        map.setPrevPlain(pfn, NIL);
        if (first != NIL) {
            map.setPrevPlain(first, pfn);
        }
        heads[order] = pfn;
        blocks[order]++;
        map.setFlagsRelease(pfn, MemMap.withOrder(MemMap.PG_BUDDY, order));
    }

    private void unlink(long pfn, int order) {
        long next = map.nextPlain(pfn);
        long prev = map.prevPlain(pfn);
        if (prev == NIL) {
            heads[order] = next;
        } else {
            map.setNextPlain(prev, next);
        }
        if (next != NIL) {
            map.setPrevPlain(next, prev);
        }
        blocks[order]--;
    }
}
