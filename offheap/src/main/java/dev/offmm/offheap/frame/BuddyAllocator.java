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
 *
 * <h2>Memory comes online as it is needed</h2>
 * Nothing above the first 2 MiB block is on a free list at first: the never-used top of memory
 * is carved into the lists one order-9 block at a time, when an allocation finds them empty
 * ({@link #onlineFrames()}). Creating the allocator therefore touches one block's struct pages,
 * not every frame's, and a struct page (with the host page it lives on) is first written when its
 * frame is first handed out. This is the top-of-memory form of the kernel's deferred struct page
 * init and memory hotplug: one bump pointer instead of per-section presence, because offmm's
 * memory is one contiguous reservation and blocks of order 9 never merge further, so carving a
 * block needs no neighbour. The top counts as free: {@link #freeFrames()} and
 * {@link #freeBlocks(int)} include it.
 *
 * <h2>What a free block knows about its bytes</h2>
 * Besides its order, a free head may carry {@link MemMap#PG_REPORTED} (the host holds no memory
 * for its bytes: never touched since the reservation, or given back by {@link PageReporter}) and
 * {@link MemMap#PG_ZEROED} (its bytes read as zeros). A split hands both to the halves; a merge
 * keeps them only if both buddies had them. Reported blocks of order 9 sit at the tail of their
 * list and unreported ones at the head, so allocation prefers memory the host already backs and
 * a reporting pass finds its candidates at the head. A block reported by {@link PageReporter} may
 * also carry {@link MemMap#PG_MAP_REPORTED}: the mem_map pages of its tail records went back too
 * (counted in {@link #memMapPagesGivenBack()} until the block is allocated again); the flag is
 * not handed to the halves of a split, whose records fault back in, as zeros, as they are written.
 */
public final class BuddyAllocator {
    /** The largest order: 2^9 frames = 2 MiB. */
    public static final int MAX_ORDER = PageSize.HUGE_ORDER;
    /** Returned when no frame is available. */
    public static final long NO_FRAME = -1;

    private static final long NIL = -1;
    /** The flags a free head may carry besides PG_BUDDY and its order. */
    private static final long STATE = MemMap.PG_REPORTED | MemMap.PG_ZEROED;
    private static final long BLOCK_FRAMES = 1L << MAX_ORDER;
    /** Host pages of a block's records given back with it: all but the one with the head record. */
    static final long MAP_TAIL_PAGES = MemMap.BLOCK_RECORD_BYTES / PageSize.BYTES - 1;

    private final MemMap map;
    private final long nrFrames;
    private final long[] heads = new long[MAX_ORDER + 1];
    private final long[] tails = new long[MAX_ORDER + 1];
    private final long[] blocks = new long[MAX_ORDER + 1];
    private final ZoneLock zoneLock = new ZoneLock();
    /** Free frames on the lists; written under the zone lock, read racily by statistics. */
    private volatile long freeFrames;
    /** Frames below this pfn are online (carved into the lists once); under the zone lock. */
    private volatile long online;
    /** Online frames whose backing the host does not hold (free, PG_REPORTED); under the zone lock. */
    private volatile long reportedFrames;
    /** Frames taken off the lists by a reporting pass, back soon; under the zone lock. */
    private volatile long isolatedFrames;
    /** Mem_map host pages of free blocks with PG_MAP_REPORTED; under the zone lock. */
    private volatile long memMapPagesGivenBack;
    /** Free order-9 blocks not reported; the reporting pass sleeps while there are none. */
    private volatile long unreportedHugeBlocks;
    /** Monitor that allocations waiting for isolated blocks wait on. */
    private final Object isolation = new Object();
    /** Batches a reporting pass has put back; moves under the zone lock. */
    private volatile long putBacks;
    /** The flags of the block the last {@link #allocLocked} took; under the zone lock. */
    private long takenFlags;
    /** Called (under the zone lock) when an unreported order-9 block becomes free. */
    private Runnable hugeBlockFreed = () -> { };

    /**
     * Creates the allocator with every frame free except pfn 0 when {@code reserveFirst}; only
     * the first block is put on the lists now (see the class comment). Every frame must read as
     * zeros and cost the host nothing (a fresh reservation). {@code nrFrames} must be a positive
     * multiple of 2^MAX_ORDER.
     */
    BuddyAllocator(MemMap map, long nrFrames, boolean reserveFirst) {
        if (nrFrames <= 0 || nrFrames % BLOCK_FRAMES != 0) {
            throw new IllegalArgumentException("nrFrames=" + nrFrames + " (expected a positive multiple of "
                    + BLOCK_FRAMES + ")");
        }
        this.map = map;
        this.nrFrames = nrFrames;
        java.util.Arrays.fill(heads, NIL);
        java.util.Arrays.fill(tails, NIL);
        zoneLock.lock();
        try {
            if (reserveFirst) {
                map.setFlagsRelease(0, MemMap.PG_RESERVED);
                map.setRefcountRelease(0, 1);
                online = BLOCK_FRAMES;
                reportedFrames = BLOCK_FRAMES - 1;
                // Frames 1..511 as blocks of order 0..8 (pfn 0 stops every merge): nine heads.
                for (int o = 0; o < MAX_ORDER; o++) {
                    freeFrames += 1L << o;
                    push(1L << o, o, STATE);
                }
            }
        } finally {
            zoneLock.unlock();
        }
    }

    /** Sets the callback run under the zone lock when an unreported order-9 block becomes free. */
    void onHugeBlockFreed(Runnable callback) {
        this.hugeBlockFreed = callback;
    }

    /**
     * Frames free in the buddy lists, the never-used top and the blocks a reporting pass holds
     * (not counting per-thread caches), read under the zone lock: an isolation or a put-back moves
     * a block between two of the terms, which a lockless read could see half done.
     */
    public long freeFrames() {
        zoneLock.lock();
        try {
            return freeFrames + (nrFrames - online) + isolatedFrames;
        } finally {
            zoneLock.unlock();
        }
    }

    /** Frames carved into the lists so far (the rest of memory was never used). */
    public long onlineFrames() {
        return online;
    }

    /** Online frames that are free and given back to the host (or never touched). */
    public long reportedFrames() {
        return reportedFrames;
    }

    /**
     * Mem_map host pages (4 KiB each) given back with the free blocks that carry
     * {@link MemMap#PG_MAP_REPORTED}: 7 per block (racy read).
     */
    public long memMapPagesGivenBack() {
        return memMapPagesGivenBack;
    }

    /** Free order-9 blocks that have not been reported. */
    long unreportedHugeBlocks() {
        return unreportedHugeBlocks;
    }

    /** Acquisitions of the zone lock that found it held, so far. */
    public long zoneLockContentions() {
        return zoneLock.contendedAcquisitions();
    }

    /** Free blocks of exactly {@code order}; those of order 9 include the never-used top. */
    public long freeBlocks(int order) {
        zoneLock.lock();
        try {
            return blocks[order] + (order == MAX_ORDER ? (nrFrames - online + isolatedFrames) / BLOCK_FRAMES : 0);
        } finally {
            zoneLock.unlock();
        }
    }

    /**
     * Allocates a naturally aligned block of 2^order frames and marks its head allocated with
     * refcount 1. Returns {@link #NO_FRAME} when no block of that order can be found; waits
     * instead while a reporting pass holds free blocks off the lists.
     */
    long alloc(int order) {
        return alloc(order, false);
    }

    /**
     * {@link #alloc(int)} that also tells whether the block reads as zeros: with {@code markZeroed},
     * the head's flags carry {@link MemMap#PG_ZEROED} beside {@code PG_ALLOCATED} when it does,
     * for the caller to read and clear before anyone else sees the block.
     */
    long alloc(int order, boolean markZeroed) {
        while (true) {
            long epoch;
            zoneLock.lock();
            try {
                long pfn = allocLocked(order);
                if (pfn != NO_FRAME) {
                    markAllocated(pfn, order);
                    if (markZeroed && takenZeroed()) {
                        map.setFlagsRelease(pfn, MemMap.withOrder(MemMap.PG_ALLOCATED, order) | MemMap.PG_ZEROED);
                    }
                    return pfn;
                }
                if (isolatedFrames == 0) {
                    return NO_FRAME;
                }
                epoch = putBacks;
            } finally {
                zoneLock.unlock();
            }
            awaitPutBack(epoch);
        }
    }

    /** Under the zone lock, right after {@link #allocLocked}: whether the block it took reads as zeros. */
    private boolean takenZeroed() {
        return (takenFlags & MemMap.PG_ZEROED) != 0;
    }

    /**
     * Takes up to {@code n} order-0 frames into {@code out[0..)}, marking each {@link MemMap#PG_PCP}
     * with refcount 1 (a cached frame keeps the count its next allocation hands out).
     * Returns how many were taken (none only if none is free; isolated blocks are waited for).
     */
    int allocBulk(long[] out, int n) {
        while (true) {
            long epoch;
            zoneLock.lock();
            try {
                int got = allocBulkLocked(out, n);
                if (got > 0 || isolatedFrames == 0) {
                    return got;
                }
                epoch = putBacks;
            } finally {
                zoneLock.unlock();
            }
            awaitPutBack(epoch);
        }
    }

    private int allocBulkLocked(long[] out, int n) {
        int got = 0;
        while (got < n) {
            long pfn = allocLocked(0);
            if (pfn == NO_FRAME) {
                break;
            }
            map.setRefcountRelease(pfn, 1);
            // A frame of a block known to be zero (never touched, or reported with DONTNEED)
            // enters the cache as zeroed: the refill does not zero it again.
            map.setFlagsRelease(pfn, MemMap.PG_PCP | (takenZeroed() ? MemMap.PG_ZEROED : 0));
            out[got++] = pfn;
        }
        return got;
    }

    /** Returns order-0 frames {@code pfns[from .. from+n)} (flags already cleared) to the lists. */
    void freeBulk(long[] pfns, int from, int n) {
        freeBulk(pfns, from, n, 0);
    }

    /**
     * {@link #freeBulk(long[], int, int)} for frames known to have been free since the reporting
     * pass {@code stamp} (an idle cache drained by the reporter): an order-9 block they complete
     * counts as free since then, so it is not aged a second time.
     */
    void freeBulk(long[] pfns, int from, int n, long stamp) {
        zoneLock.lock();
        try {
            for (int i = from; i < from + n; i++) {
                freeLocked(pfns[i], 0, stamp);
            }
        } finally {
            zoneLock.unlock();
        }
    }

    /** Returns a block whose head flags were already cleared by a successful free CAS. */
    void free(long pfn, int order) {
        zoneLock.lock();
        try {
            freeLocked(pfn, order, 0);
        } finally {
            zoneLock.unlock();
        }
    }

    private void markAllocated(long pfn, int order) {
        map.setRefcountRelease(pfn, 1);
        // Release: pairs with the acquire/CAS of the freeing thread (FrameAllocator.free*).
        map.setFlagsRelease(pfn, MemMap.withOrder(MemMap.PG_ALLOCATED, order));
    }

    /** Takes a block of {@code order} off the lists (flags cleared, state in takenFlags), or NO_FRAME. */
    private long allocLocked(int order) {
        int o = order;
        while (o <= MAX_ORDER && heads[o] == NIL) {
            o++;
        }
        if (o > MAX_ORDER) {
            if (!carveLocked()) {
                return NO_FRAME;
            }
            o = MAX_ORDER;
        }
        long pfn = heads[o];
        long flags = map.flagsPlain(pfn);
        long state = flags & STATE;
        if ((flags & MemMap.PG_MAP_REPORTED) != 0) {
            // Its tail records fault back in (as zeros) as they are written: committed from now on.
            memMapPagesGivenBack -= MAP_TAIL_PAGES;
        }
        unlink(pfn, o);
        while (o > order) {
            o--;
            long half = pfn + (1L << o);
            push(half, o, state);
        }
        if ((state & MemMap.PG_REPORTED) != 0) {
            // The host backs these frames again from their first touch: committed from now on.
            reportedFrames -= 1L << order;
        }
        takenFlags = state;
        map.setPrivatePlain(pfn, 0);
        map.setFlagsRelease(pfn, 0);
        freeFrames -= 1L << order;
        return pfn;
    }

    /** Brings the next never-used block of the top online, if any: never touched, so zero and not committed. */
    private boolean carveLocked() {
        long pfn = online;
        if (pfn >= nrFrames) {
            return false;
        }
        online = pfn + BLOCK_FRAMES;
        freeFrames += BLOCK_FRAMES;
        reportedFrames += BLOCK_FRAMES;
        push(pfn, MAX_ORDER, STATE);
        return true;
    }

    private void freeLocked(long pfn, int order, long stamp) {
        freeFrames += 1L << order;
        int o = order;
        long head = pfn;
        while (o < MAX_ORDER) {
            long buddy = head ^ (1L << o);
            long flags = buddy < online ? map.flagsAcquire(buddy) : 0;
            if ((flags & ~STATE) != MemMap.withOrder(MemMap.PG_BUDDY, o)) {
                break;
            }
            unlink(buddy, o);
            if ((flags & MemMap.PG_REPORTED) != 0) {
                // Half of the merged block is dirty: it counts as committed as a whole now.
                reportedFrames -= 1L << o;
            }
            map.setFlagsRelease(buddy, 0);
            head = Math.min(head, buddy);
            o++;
        }
        push(head, o, 0);
        if (stamp != 0 && o == MAX_ORDER) {
            map.setPrivatePlain(head, stamp);
        }
    }

    /**
     * Puts the block at {@code pfn} on the list of {@code order} with {@code state}: reported
     * order-9 blocks at the tail, every other at the head. Clears the reporting pass's stamp.
     */
    private void push(long pfn, int order, long state) {
        map.setPrivatePlain(pfn, 0);
        if (order == MAX_ORDER && (state & MemMap.PG_REPORTED) != 0) {
            long last = tails[order];
            map.setNextPlain(pfn, NIL);
            map.setPrevPlain(pfn, last);
            if (last != NIL) {
                map.setNextPlain(last, pfn);
            } else {
                heads[order] = pfn;
            }
            tails[order] = pfn;
        } else {
            long first = heads[order];
            map.setNextPlain(pfn, first);
            map.setPrevPlain(pfn, NIL);
            if (first != NIL) {
                map.setPrevPlain(first, pfn);
            } else {
                tails[order] = pfn;
            }
            heads[order] = pfn;
        }
        blocks[order]++;
        map.setFlagsRelease(pfn, MemMap.withOrder(MemMap.PG_BUDDY, order) | state);
        if (order == MAX_ORDER && (state & MemMap.PG_REPORTED) == 0) {
            unreportedHugeBlocks++;
            hugeBlockFreed.run();
        }
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
        } else {
            tails[order] = prev;
        }
        blocks[order]--;
        if (order == MAX_ORDER && (map.flagsPlain(pfn) & MemMap.PG_REPORTED) == 0) {
            unreportedHugeBlocks--;
        }
    }

    // ---- free page reporting (PageReporter): isolate under the lock, call the host without it

    /**
     * Takes up to {@code max} unreported order-9 blocks off the head of their list into
     * {@code out} for reporting: those stamped by a pass at or before {@code ripeStamp}; blocks
     * not yet stamped are stamped with {@code stamp} (they have been free at least since this
     * pass), and taken too when that is ripe. Scans at most {@code scan} blocks. Isolated blocks
     * are not allocatable until {@link #putBackReported}; an allocation that finds nothing else
     * waits for them ({@link #awaitPutBack}). Returns how many were taken.
     */
    int isolateForReporting(long[] out, int max, int scan, long stamp, long ripeStamp) {
        int n = 0;
        zoneLock.lock();
        try {
            long pfn = heads[MAX_ORDER];
            for (int seen = 0; pfn != NIL && seen < scan && n < max; seen++) {
                long next = map.nextPlain(pfn);
                if ((map.flagsPlain(pfn) & MemMap.PG_REPORTED) != 0) {
                    break; // reported blocks sit at the tail: none left to look at
                }
                long stamped = map.privatePlain(pfn);
                if (stamped == 0) {
                    map.setPrivatePlain(pfn, stamp);
                    stamped = stamp;
                }
                if (stamped <= ripeStamp) {
                    unlink(pfn, MAX_ORDER);
                    map.setFlagsRelease(pfn, MemMap.PG_ISOLATED);
                    freeFrames -= BLOCK_FRAMES;
                    isolatedFrames += BLOCK_FRAMES;
                    out[n++] = pfn;
                }
                pfn = next;
            }
        } finally {
            zoneLock.unlock();
        }
        return n;
    }

    /**
     * Puts back blocks {@code pfns[0 .. n)} taken by {@link #isolateForReporting}: those whose
     * bit in {@code reported} is set as reported (with PG_ZEROED if {@code zeroed}, and with
     * PG_MAP_REPORTED if their bit in {@code mapReported} is set too: the host pages of their tail
     * records went back), the others as they were (a failed report changes nothing else), and
     * wakes allocations waiting for them. Called after every host call of the batch has returned,
     * so the zone lock orders those calls before any allocation of the blocks.
     */
    void putBackReported(long[] pfns, int n, long reported, long mapReported, boolean zeroed) {
        zoneLock.lock();
        try {
            for (int i = 0; i < n; i++) {
                boolean ok = (reported & (1L << i)) != 0;
                boolean mapOk = ok && (mapReported & (1L << i)) != 0;
                isolatedFrames -= BLOCK_FRAMES;
                freeFrames += BLOCK_FRAMES;
                if (ok) {
                    reportedFrames += BLOCK_FRAMES;
                }
                if (mapOk) {
                    memMapPagesGivenBack += MAP_TAIL_PAGES;
                }
                long state = ok ? MemMap.PG_REPORTED | (zeroed ? MemMap.PG_ZEROED : 0)
                        | (mapOk ? MemMap.PG_MAP_REPORTED : 0) : 0;
                push(pfns[i], MAX_ORDER, state);
            }
            putBacks++;
        } finally {
            zoneLock.unlock();
        }
        synchronized (isolation) {
            isolation.notifyAll();
        }
    }

    /**
     * For an allocation that found no block while a reporting pass held some off the lists
     * (its host calls take microseconds to milliseconds): waits until a batch is put back after
     * {@code epoch}, the count the failed attempt read under the zone lock, so a put-back between
     * that attempt and this wait is not missed. An interrupt is kept for the caller; the wait
     * then yields instead of sleeping.
     */
    private void awaitPutBack(long epoch) {
        boolean interrupted = false;
        synchronized (isolation) {
            // The count moves under the zone lock before the notify takes this monitor: no lost wake-up.
            while (putBacks == epoch) {
                if (interrupted) {
                    Thread.yield();
                    continue;
                }
                try {
                    isolation.wait(10);
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}
