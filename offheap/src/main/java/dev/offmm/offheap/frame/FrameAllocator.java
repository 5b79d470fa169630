package dev.offmm.offheap.frame;

import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.page.PageSize;
import dev.offmm.offheap.inject.FailPoints;
import dev.offmm.offheap.inject.FailSite;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Hands out frames: order 0 through a per-thread {@link FrameCache} refilled from and drained
 * to the {@link BuddyAllocator} in batches; higher orders straight from the buddy.
 *
 * <p>Frame states live in the head frame's flags: {@code PG_ALLOCATED|order} while in use,
 * {@code PG_PCP} while parked in a cache, {@code PG_BUDDY|order} while on a free list. A free
 * moves a frame out of {@code PG_ALLOCATED} with a CAS, so of two racing frees exactly one wins
 * and the other is reported as a double free. Before that CAS a free checks that the frame is
 * no longer a page table (its destructor ran), is unmapped, and holds no extra references.
 *
 * <p>A cache holds at most {@code high} frames, a constant (by default at most 512, 2 MiB), and
 * its frames are not lost to other threads: before an allocation reports exhaustion it drains
 * every thread's cache back to the buddy ({@code drain_all_pages}), the caches of live threads
 * under their own locks, and forgets the caches of threads that have died. Caches of dead threads
 * are also reaped whenever the number of caches doubles.
 *
 * <p>Frames released in bulk by an unmap ({@link #putFrames(long[], int, FrameCache)}) are zeroed
 * as they enter a cache, back to back and outside every lock ({@code PG_ZEROED}), the way the
 * kernel's {@code init_on_free} does: the zeroing then streams at the machine's store bandwidth,
 * and a fault that takes such a frame ({@link #allocZeroedFrame()}) does not have to drain 4 KiB
 * of fresh stores at the locked instruction of its page-table lock. Only the frames that will
 * stay cached are zeroed; those a drain sends to the buddy lose the flag. A refill from the buddy
 * zeroes its batch the same way, so only frames freed one at a time enter a cache unzeroed.
 */
public final class FrameAllocator {
    /** Returned when no frame is available. */
    public static final long NO_FRAME = BuddyAllocator.NO_FRAME;

    private static final long ALLOCATED_ORDER0 = MemMap.withOrder(MemMap.PG_ALLOCATED, 0);

    private final MemMap map;
    /** The frames' bytes; frame {@code pfn} starts at {@code pfn << PageSize.SHIFT}. Frame 0 is the zero page. */
    private final MemorySegment region;
    private final long nrFrames;
    private final BuddyAllocator buddy;
    private final FailPoints failPoints;
    private final int batch;
    private final int high;
    private final ConcurrentLinkedQueue<FrameCache> caches = new ConcurrentLinkedQueue<>();
    private final ThreadLocal<FrameCache> cache = ThreadLocal.withInitial(this::registerCache);
    /** Caches registered, and how many were alive after the last reap: reap again when they double. */
    private final AtomicInteger registered = new AtomicInteger();
    private volatile int aliveAtLastReap = 1;
    private volatile boolean closed;
    /** Free page reporting, or null when it is off. */
    private final PageReporter reporter;
    /** The 2 MiB path. */
    private final HugeFrames huge;

    /** The host side of free page reporting: gives a range of the region back; 0 or an errno. */
    @FunctionalInterface
    public interface Discarder {
        /** Gives the backing of bytes {@code [offset, offset + length)} of the region back to the host; 0 or an errno. */
        int discard(long offset, long length);
    }

    /**
     * Free page reporting: blocks free for {@code delayNanos} (0: at once) go back through
     * {@code discarder}; {@code zeroes}: they read as zeros afterwards ({@code MADV_DONTNEED}).
     * {@code mapDiscarder}, if not null, gives back ranges of the mem_map ({@code offset} in
     * {@link MemMap#segment()}, page-aligned), after which they must read as zeros: the host pages
     * of a reported block's tail records go back through it.
     */
    public record Reporting(long delayNanos, boolean zeroes, Discarder discarder, Discarder mapDiscarder) {
        /** Validates the delay. */
        public Reporting {
            if (delayNanos < 0) {
                throw new IllegalArgumentException("delayNanos=" + delayNanos + " (expected >= 0)");
            }
        }
    }

    /**
     * Creates the allocator over {@code map} and the frames' bytes {@code region}, whose first
     * frame is the zero page. {@code batch} frames move between a cache and the buddy at a time;
     * a cache holds at most {@code high} frames.
     */
    public FrameAllocator(MemMap map, MemorySegment region, FailPoints failPoints, int batch, int high, Reporting reporting) {
        this.map = map;
        this.region = region;
        this.nrFrames = map.nrFrames();
        this.failPoints = failPoints;
        this.batch = batch;
        this.high = high;
        this.buddy = new BuddyAllocator(map, nrFrames, true);
        this.huge = new HugeFrames(this, buddy, map, failPoints);
        this.reporter = reporting == null ? null
                : new PageReporter(this, reporting.discarder(), reporting.mapDiscarder(), reporting.zeroes(),
                        reporting.delayNanos(), failPoints);
        if (reporter != null) {
            reporter.start();
        }
    }

    private FrameCache registerCache() {
        FrameCache c = new FrameCache(Thread.currentThread(), high + batch, batch);
        caches.add(c);
        if (registered.incrementAndGet() > 2 * aliveAtLastReap) {
            reapDeadCaches();
        }
        return c;
    }

    /** The 2 MiB frames of huge mappings. */
    public HugeFrames huge() {
        return huge;
    }

    /** The buddy allocator behind this one. */
    public BuddyAllocator buddy() {
        return buddy;
    }

    /**
     * Allocates one order-0 frame with refcount 1, not zeroed. Returns {@link #NO_FRAME} when
     * memory is exhausted or a fail point says so.
     */
    public long allocFrame() {
        long pfn = takeFrame();
        if (pfn != NO_FRAME) {
            // Cached frames already hold refcount 1 (set by the refill or kept by the free).
            // Release: pairs with the CAS in freeFrame of whichever thread frees it.
            map.setFlagsRelease(pfn, ALLOCATED_ORDER0);
        }
        return pfn;
    }

    /**
     * {@link #allocFrame()} for a frame that must hold only zeros: a frame zeroed when it was
     * released into the cache is handed out as it is, any other is zeroed here (outside every lock).
     */
    public long allocZeroedFrame() {
        long pfn = takeFrame();
        if (pfn != NO_FRAME) {
            // Acquire: the flag and the zeros were stored by whichever thread released the frame
            // into this cache, before that thread's unlock; our pop came after our lock.
            boolean zeroed = (map.flagsAcquire(pfn) & MemMap.PG_ZEROED) != 0;
            map.setFlagsRelease(pfn, ALLOCATED_ORDER0);
            if (!zeroed) {
                zeroFrames(pfn, 0);
            }
        }
        return pfn;
    }

    /** Pops a frame of the calling thread's cache (refilling it, draining all caches if need be). */
    private long takeFrame() {
        ensureOpen();
        if (failPoints.shouldFail(FailSite.FRAME)) {
            return NO_FRAME;
        }
        FrameCache c = cache.get();
        long pfn = popOrRefill(c);
        // Outside our own cache's lock: draining takes every cache's lock in turn.
        if (pfn == NO_FRAME && drainAllCaches() > 0) {
            pfn = popOrRefill(c);
        }
        return pfn;
    }

    /**
     * Fills the block of 2^order frames at {@code pfn} with zeros, frame by frame, each copied
     * from the shared zero page (pfn 0, never written): one bounds-checked copy per frame, no
     * slice object. For a 2 MiB block this measured 14 % faster than one
     * {@code MemorySegment.fill} of 2 MiB, and than fills of 4 or 64 KiB (229 against 268 us per
     * 2 MiB over a 256 MiB pool; {@code ZeroHugeBenchmark}).
     */
    public void zeroFrames(long pfn, int order) {
        long to = pfn << PageSize.SHIFT;
        long end = to + (PageSize.BYTES << order);
        for (; to < end; to += PageSize.BYTES) {
            MemorySegment.copy(region, 0, region, to, PageSize.BYTES);
        }
    }

    /** A frame from the thread's cache {@code c}, refilled from the buddy if empty, or NO_FRAME. */
    private long popOrRefill(FrameCache c) {
        c.lock();
        try {
            int n = c.countPlain();
            if (n > 0) {
                long pfn = c.pfns[--n];
                c.setCountRelease(n);
                return pfn;
            }
        } finally {
            c.unlock();
        }
        int got = refill(c);
        if (got == 0) {
            return NO_FRAME;
        }
        c.lock();
        try {
            // Frames may have been put meanwhile: they stay below the batch, which pops first,
            // and the oldest go back if the cache would hold more than high.
            int over = c.countPlain() + got - high;
            if (over > 0) {
                drainLocked(c, over);
            }
            int n = c.countPlain();
            System.arraycopy(c.refill, 0, c.pfns, n, got);
            n += got;
            long pfn = c.pfns[--n];
            c.setCountRelease(n);
            return pfn;
        } finally {
            c.unlock();
        }
    }

    /**
     * Takes a batch from the buddy into {@code c}'s refill array and zeroes it, outside the cache
     * lock (others put frames into this cache meanwhile; the batch is no cache's yet); returns
     * how many. The batch is zeroed here, back to back, rather than frame by frame at each fault:
     * the stores stream instead of draining at the next locked instruction. A cache holds at most
     * {@code high} after every put, so the batch always fits.
     */
    private int refill(FrameCache c) {
        long[] a = c.refill;
        int got = buddy.allocBulk(a, batch);
        // Pop order is ascending pfn: the frames of a batch are then touched in address order,
        // which the hardware prefetchers stream (about 3x cheaper than scattered).
        for (int i = 0, j = got - 1; i < j; i++, j--) {
            long t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
        for (int i = got - 1; i >= 0; i--) {
            // Frames of a block known to be zero (never touched, or reported with DONTNEED)
            // came flagged from the buddy: the host zeroes them at first touch, not us.
            if ((map.flagsPlain(a[i]) & MemMap.PG_ZEROED) == 0) {
                zeroFrames(a[i], 0);
                map.setFlagsRelease(a[i], MemMap.PG_PCP | MemMap.PG_ZEROED);
            }
        }
        return got;
    }

    /**
     * Allocates a naturally aligned block of 2^order frames, head refcount 1, not zeroed.
     * Returns {@link #NO_FRAME} when no such block is free or a fail point says so.
     */
    public long allocFrames(int order) {
        checkOrder(order);
        if (order == 0) {
            return allocFrame();
        }
        ensureOpen();
        if (failPoints.shouldFail(FailSite.FRAME_HIGH_ORDER)) {
            return NO_FRAME;
        }
        long pfn = buddy.alloc(order);
        if (pfn == NO_FRAME && drainAllCaches() > 0) {
            pfn = buddy.alloc(order);
        }
        return pfn;
    }

    /**
     * Frees an order-0 frame allocated by {@link #allocFrame()}.
     *
     * @throws IllegalArgumentException if {@code pfn} is out of range or was allocated with another order
     * @throws IllegalStateException on a double free, or if the frame is still a page table,
     *         mapped, or referenced
     */
    public void freeFrame(long pfn) {
        ensureOpen();
        checkPfn(pfn, 0);
        checkReleasable(pfn, 0);
        if (!map.casFlags(pfn, ALLOCATED_ORDER0, MemMap.PG_PCP)) {
            throw badFree(pfn, 0);
        }
        // The refcount stays 1 while the frame is cached: the next allocation need not write it.
        pushToCache(pfn);
    }

    /** Frees a block of 2^order frames; the checks of {@link #freeFrame(long)} apply. */
    public void freeFrames(long pfn, int order) {
        checkOrder(order);
        if (order == 0) {
            freeFrame(pfn);
            return;
        }
        ensureOpen();
        checkPfn(pfn, order);
        checkReleasable(pfn, order);
        if (!map.casFlags(pfn, MemMap.withOrder(MemMap.PG_ALLOCATED, order), 0)) {
            throw badFree(pfn, order);
        }
        map.setRefcountRelease(pfn, 0);
        buddy.free(pfn, order);
    }

    /**
     * Drops one reference to an allocated block, freeing it when the count reaches zero (the
     * kernel's {@code put_page}). The block must be unmapped and no longer a table by then.
     */
    public void putFrames(long pfn, int order) {
        checkOrder(order);
        checkPfn(pfn, order);
        int left = map.addAndGetRefcount(pfn, -1);
        if (left > 0) {
            return;
        }
        if (left < 0) {
            map.addAndGetRefcount(pfn, 1);
            throw new IllegalStateException("refcount underflow on pfn=" + pfn);
        }
        // The last reference: nobody else can reach the frame, so the refcount stays 0.
        ensureOpen();
        int type = map.typeAcquire(pfn);
        int mapcount = map.mapcountVolatile(pfn);
        if (type != MemMap.TYPE_NONE || mapcount != 0) {
            map.addAndGetRefcount(pfn, 1);
            throw new IllegalStateException("last reference to pfn=" + pfn + " dropped while it is still page type "
                    + type + " with mapcount " + mapcount);
        }
        long allocated = MemMap.withOrder(MemMap.PG_ALLOCATED, order);
        if (order == 0) {
            if (!map.casFlags(pfn, allocated, MemMap.PG_PCP)) {
                map.addAndGetRefcount(pfn, 1);
                throw badFree(pfn, 0);
            }
            map.setRefcountRelease(pfn, 1);
            pushToCache(pfn);
        } else {
            if (!map.casFlags(pfn, allocated, 0)) {
                map.addAndGetRefcount(pfn, 1);
                throw badFree(pfn, order);
            }
            buddy.free(pfn, order);
        }
    }

    /**
     * The calling thread's frame cache, as the home of frames released later on its behalf
     * (after the grace period of an unmap it made, by whichever thread ends the grace period).
     */
    public FrameCache currentCache() {
        ensureOpen();
        return cache.get();
    }

    /**
     * {@code release_pages}: drops one reference from each order-0 frame {@code pfns[0 .. n)};
     * those whose last reference goes return to {@code home} (the cache of the thread that unmapped
     * them, so that they come back to the CPU that last touched them), or to the caller's own
     * cache if that thread has died; all under one acquisition of that cache's lock. The checks
     * of {@link #putFrames} apply. Reorders {@code pfns}.
     */
    public void putFrames(long[] pfns, int n, FrameCache home) {
        ensureOpen();
        int k = 0;
        for (int i = 0; i < n; i++) {
            long pfn = pfns[i];
            if (lastReference(pfn, 0)) {
                pfns[k++] = pfn;
            }
        }
        if (k == 0) {
            return;
        }
        // At most a cache's worth stays cached; the rest goes straight to the buddy.
        int keep = Math.min(k, high);
        int direct = k - keep;
        if (direct > 0) {
            for (int i = 0; i < direct; i++) {
                map.setFlagsRelease(pfns[i], 0);
            }
            buddy.freeBulk(pfns, 0, direct);
        }
        // Zeroed before any lock, back to back; published by the cache lock's release below.
        for (int i = direct; i < k; i++) {
            zeroFrames(pfns[i], 0);
            map.setFlagsRelease(pfns[i], MemMap.PG_PCP | MemMap.PG_ZEROED);
        }
        // The home cache if its lock is free; else our own, as the kernel frees to the local
        // pcp list or the buddy when a pcp trylock fails: never wait for a busy (or descheduled)
        // owner on the release path.
        FrameCache c = home;
        if (!c.tryLock()) {
            c = cache.get();
            c.lock();
        } else if (c.reaped) {
            c.unlock();
            c = cache.get();
            c.lock();
        }
        try {
            int over = c.countPlain() + keep - high;
            if (over > 0) {
                drainLocked(c, Math.max(over, batch));
            }
            int count = c.countPlain();
            System.arraycopy(pfns, direct, c.pfns, count, keep);
            c.setCountRelease(count + keep);
        } finally {
            c.unlock();
        }
    }

    /**
     * Drops one reference of the order-0 frame {@code pfn}; if it was the last, the frame is
     * checked and marked cached (refcount 1, as cached frames keep it) and true returned.
     */
    private boolean lastReference(long pfn, int order) {
        checkPfn(pfn, order);
        int left = map.addAndGetRefcount(pfn, -1);
        if (left > 0) {
            return false;
        }
        if (left < 0) {
            map.addAndGetRefcount(pfn, 1);
            throw new IllegalStateException("refcount underflow on pfn=" + pfn);
        }
        int type = map.typeAcquire(pfn);
        int mapcount = map.mapcountVolatile(pfn);
        if (type != MemMap.TYPE_NONE || mapcount != 0) {
            map.addAndGetRefcount(pfn, 1);
            throw new IllegalStateException("last reference to pfn=" + pfn + " dropped while it is still page type "
                    + type + " with mapcount " + mapcount);
        }
        if (!map.casFlags(pfn, ALLOCATED_ORDER0, MemMap.PG_PCP)) {
            map.addAndGetRefcount(pfn, 1);
            throw badFree(pfn, 0);
        }
        map.setRefcountRelease(pfn, 1);
        return true;
    }

    private void pushToCache(long pfn) {
        FrameCache c = cache.get();
        c.lock();
        try {
            int n = c.countPlain();
            c.pfns[n++] = pfn;
            c.setCountRelease(n);
            if (n > high) {
                drainLocked(c, batch);
            }
        } finally {
            c.unlock();
        }
    }

    private void checkReleasable(long pfn, int order) {
        if ((map.flagsAcquire(pfn) & MemMap.PG_RESERVED) != 0) {
            throw new IllegalStateException("pfn=" + pfn + " is reserved (the shared zero page) and cannot be freed");
        }
        int type = map.typeAcquire(pfn);
        if (type != MemMap.TYPE_NONE) {
            throw new IllegalStateException("freeing pfn=" + pfn + " that is still in use as page type " + type
                    + " (its destructor has not run)");
        }
        int mapcount = map.mapcountVolatile(pfn);
        if (mapcount != 0) {
            throw new IllegalStateException("freeing pfn=" + pfn + " that is still mapped (mapcount=" + mapcount + ")");
        }
        int ref = map.refcountVolatile(pfn);
        long flags = map.flagsAcquire(pfn);
        if (ref != 1 && (flags & MemMap.PG_ALLOCATED) != 0) {
            throw new IllegalStateException("freeing pfn=" + pfn + " that is still referenced (refcount=" + ref + ")");
        }
    }

    private RuntimeException badFree(long pfn, int order) {
        long flags = map.flagsAcquire(pfn);
        if ((flags & MemMap.PG_ALLOCATED) != 0) {
            return new IllegalArgumentException("pfn=" + pfn + " freed with order=" + order
                    + " (expected the order it was allocated with, " + MemMap.orderOf(flags) + ")");
        }
        if ((flags & MemMap.PG_RESERVED) != 0) {
            return new IllegalStateException("pfn=" + pfn + " is reserved and cannot be freed");
        }
        return new IllegalStateException("double free of pfn=" + pfn + " (frame is not allocated)");
    }

    /**
     * Moves up to {@code count} frames of {@code c}, whose lock the caller holds, to the buddy:
     * the oldest ones (the bottom of the stack), as the kernel frees a pcp list's cold end, so
     * the frames most recently freed, still in this CPU's caches, stay.
     */
    private void drainLocked(FrameCache c, int count) {
        int n = c.countPlain();
        int take = Math.min(count, n);
        long[] a = c.pfns;
        for (int i = 0; i < take; i++) {
            map.setFlagsRelease(a[i], 0);
        }
        buddy.freeBulk(a, 0, take);
        System.arraycopy(a, take, a, 0, n - take);
        c.setCountRelease(n - take);
    }

    /**
     * For the page reporter, the kernel's decay of idle pcp lists: empties into the buddy every
     * cache whose lock nobody took during the last {@code minIdlePasses} reporting passes, so the
     * frames parked in the caches of threads that went quiet (a page table freed into a cache
     * keeps its whole 2 MiB block from merging) can be reported too. Their blocks count as free
     * since pass {@code stamp}. Returns how many frames moved.
     */
    long drainIdleCaches(int minIdlePasses, long stamp) {
        long moved = 0;
        for (FrameCache c : caches) {
            c.lock();
            try {
                // Our own lock() counted one use: the cache was idle if that is the only one.
                long uses = c.usesPlain();
                if (uses - 1 != c.reporterSeen) {
                    c.idlePasses = 0;
                } else if (++c.idlePasses >= minIdlePasses && c.countPlain() > 0) {
                    int n = c.countPlain();
                    long[] a = c.pfns;
                    for (int i = 0; i < n; i++) {
                        map.setFlagsRelease(a[i], 0);
                    }
                    buddy.freeBulk(a, 0, n, stamp);
                    c.setCountRelease(0);
                    moved += n;
                }
                c.reporterSeen = uses;
            } finally {
                c.unlock();
            }
        }
        return moved;
    }

    /** Whether some cache holds frames (the reporter keeps watching them while one does). */
    boolean cachesHoldFrames() {
        for (FrameCache c : caches) {
            if (c.countAcquire() > 0) {
                return true;
            }
        }
        return false;
    }

    /** Empties {@code c} into the buddy under its lock; returns how many frames moved. */
    private int drainAll(FrameCache c) {
        c.lock();
        try {
            int n = c.countPlain();
            drainLocked(c, n);
            return n;
        } finally {
            c.unlock();
        }
    }

    /** Returns every frame cached by the calling thread to the buddy allocator. */
    public void drainCurrentThread() {
        ensureOpen();
        drainAll(cache.get());
    }

    /**
     * {@code drain_all_pages}: empties every thread's cache into the buddy (each under its own
     * lock; the owners wait at most for one drain) and forgets the caches of dead threads.
     * Returns how many frames went back.
     */
    public long drainAllCaches() {
        long freed = reapDeadCaches();
        for (FrameCache c : caches) {
            freed += drainAll(c);
        }
        return freed;
    }

    /**
     * Drains and forgets the caches of threads that have terminated. Returns how many frames
     * went back to the buddy allocator.
     */
    public long reapDeadCaches() {
        long freed = 0;
        int alive = 0;
        for (FrameCache c : caches) {
            if (c.owner.isAlive()) {
                alive++;
            } else if (caches.remove(c)) {
                // isAlive() == false orders every write of the dead owner before this point.
                c.lock();
                try {
                    c.reaped = true;
                    freed += c.countPlain();
                    drainLocked(c, c.countPlain());
                } finally {
                    c.unlock();
                }
                registered.decrementAndGet();
            }
        }
        aliveAtLastReap = Math.max(1, alive);
        return freed;
    }

    /**
     * Frames an allocation can get now: free in the buddy lists, plus those parked in threads'
     * caches (which an allocation drains before it gives up). Racy while threads allocate (a
     * refill batch in flight is in neither), but exact against the page reporter's drains of idle
     * caches on its own thread: each cache is read under its lock, which a drain holds across its
     * move, the buddy's count before and after (under the zone lock, never both locks at once),
     * and the sum is taken again (up to 16 times) if a move changed the buddy's in between.
     */
    public long freeFrameCount() {
        long sum = 0;
        for (int attempt = 0; attempt < 16; attempt++) {
            long before = buddy.freeFrames();
            sum = before;
            // Each count under its cache's lock: a drain holds it across its move into the buddy,
            // so a count is never read between the move and the count's update.
            for (FrameCache c : caches) {
                c.lockUncounted();
                try {
                    sum += c.countPlain();
                } finally {
                    c.unlock();
                }
            }
            if (buddy.freeFrames() == before) {
                break;
            }
        }
        return sum;
    }

    /** Caches registered, of live threads and of dead ones not yet reaped (racy). */
    public int cacheCount() {
        return registered.get();
    }

    /** Frames parked in threads' caches, a part of {@link #freeFrameCount()} (racy). */
    public long cachedFrameCount() {
        long n = 0;
        for (FrameCache c : caches) {
            n += c.countAcquire();
        }
        return n;
    }

    /** Frames in the region. */
    public long frameCount() {
        return nrFrames;
    }

    /** Frames brought online so far: the rest of memory was never handed out. */
    public long onlineFrameCount() {
        return buddy.onlineFrames();
    }

    /** Online frames that are free and cost the host nothing (reported, or never touched). */
    public long reportedFrameCount() {
        return buddy.reportedFrames();
    }

    /** 2 MiB blocks given back to the host by free page reporting so far; 0 when it is off. */
    public long reportedBlocks() {
        return reporter == null ? 0 : reporter.reportedBlocks();
    }

    /**
     * Bytes of the mem_map given back to the host with the free blocks reported now (28 KiB each:
     * the host pages of their tail records); 0 when reporting is off.
     */
    public long memMapBytesGivenBack() {
        return buddy.memMapPagesGivenBack() << PageSize.SHIFT;
    }

    /**
     * Reporting host calls that failed: for a block's frames (it stayed unreported), or for its
     * tail records (their struct pages stayed committed).
     */
    public long failedReports() {
        return reporter == null ? 0 : reporter.failedReports();
    }

    /** Whether free page reporting is on. */
    public boolean reporting() {
        return reporter != null;
    }

    /**
     * Marks the allocator closed (later calls fail with {@link IllegalStateException}) and stops
     * free page reporting, waiting for a pass that is calling the host on the region.
     */
    public void close() {
        closed = true;
        if (reporter != null) {
            reporter.stop();
        }
    }

    void checkOpen() {
        ensureOpen();
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("physical memory is closed");
        }
    }

    private void checkPfn(long pfn, int order) {
        if (pfn < 0 || pfn + (1L << order) > nrFrames) {
            throw new IllegalArgumentException("pfn=" + pfn + " (expected 0 <= pfn < " + nrFrames + " for order " + order + ")");
        }
        if ((pfn & ((1L << order) - 1)) != 0) {
            throw new IllegalArgumentException("pfn=" + pfn + " (expected a multiple of " + (1L << order)
                    + " for order " + order + ")");
        }
    }

    private static void checkOrder(int order) {
        if (order < 0 || order > BuddyAllocator.MAX_ORDER) {
            throw new IllegalArgumentException("order=" + order + " (expected 0 <= order <= " + BuddyAllocator.MAX_ORDER + ")");
        }
    }
}
