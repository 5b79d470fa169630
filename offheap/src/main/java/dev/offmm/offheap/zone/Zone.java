package dev.offmm.offheap.zone;

import dev.offmm.offheap.Checks;
import dev.offmm.offheap.frame.BuddyAllocator;
import dev.offmm.offheap.frame.FrameAllocator;
import dev.offmm.offheap.host.HostMemory;
import dev.offmm.offheap.inject.FailPoints;
import dev.offmm.offheap.lock.LockSlab;
import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.page.PageSize;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The inside of one physical memory: the frame region, its mem_map, the frame allocator with
 * its per-thread caches, the debug-lock slab and the fail points. {@code dev.offmm.core} reaches
 * it through {@code PhysicalMemory.zone()}; the module exports this package to core alone, so
 * user code on the module path can neither allocate a frame nor touch the region.
 *
 * <p>Pfn 0 is reserved for the whole life of the memory as the shared zero page, so neither a
 * page-table entry nor a ptl word ever names it by accident.
 *
 * <p>Pinned pages hand out segments whose lifetime is their pin's, not the region's; so that no
 * such segment can outlive the memory behind it, the region is released only once the zone is
 * closed and the last pin has closed ({@link #pinOpened()} / {@link #pinClosed()}).
 *
 * <p>Both regions are reservations from the host ({@link HostMemory#reserve}): nothing is
 * committed until it is touched, the buddy touches a struct page only when its frame is first
 * handed out, and free page reporting gives free 2 MiB blocks back, with the mem_map pages of
 * their tail records (always with {@code MADV_DONTNEED}, so that they read as zeros). Where the host calls are not
 * available, both come from {@link Arena#allocate} (committed and zeroed up front) and reporting
 * is off.
 */
public final class Zone {
    private final Arena arena;
    private final MemorySegment region;
    private final MemMap memMap;
    private final FailPoints failPoints;
    private final FrameAllocator frames;
    private final LockSlab lockSlab;
    private final AtomicLong openPins = new AtomicLong();
    private final AtomicBoolean released = new AtomicBoolean();
    private volatile boolean closed;
    private final Backing backing;
    /** 0, or the errno of a refused {@code MADV_HUGEPAGE}. */
    private final int hugePagesErrno;

    /**
     * How the zone's memory is backed by the host. {@code reportDelayNanos}: free 2 MiB blocks
     * go back after this long (0: at once; negative: never). {@code lazyFree}: with
     * {@code MADV_FREE} rather than {@code MADV_DONTNEED}. {@code hostHugePages}: the frame region
     * is advised {@code MADV_HUGEPAGE}. {@code commitUpFront}: every page committed at create
     * ({@code MAP_POPULATE}), reporting off; {@code lock}: and locked ({@code mlock}).
     */
    public record Backing(long reportDelayNanos, boolean lazyFree, boolean hostHugePages, boolean commitUpFront,
            boolean lock) {
        /** Reporting after {@code delayNanos} with {@code MADV_DONTNEED}, nothing else. */
        public static Backing reporting(long delayNanos) {
            return new Backing(delayNanos, false, false, false, false);
        }

        boolean reports() {
            return reportDelayNanos >= 0 && !commitUpFront && HostMemory.AVAILABLE;
        }
    }

    /**
     * Reserves a zone of {@code bytes} (a multiple of 2 MiB) whose per-thread caches move
     * {@code cacheBatch} frames at a time and hold at most {@code cacheHigh}, backed as
     * {@code backing} says.
     *
     * @throws dev.offmm.offheap.host.HostCallException if the host refuses the reservation
     */
    public Zone(long bytes, int cacheBatch, int cacheHigh, Backing backing) {
        long nrFrames = bytes >>> PageSize.SHIFT;
        long recordBytes = nrFrames << MemMap.RECORD_SHIFT;
        this.backing = backing;
        this.arena = Arena.ofShared();
        int hugeErrno = 0;
        try {
            if (HostMemory.AVAILABLE) {
                boolean commit = backing.commitUpFront() || backing.lock();
                this.region = HostMemory.reserve(bytes, PageSize.HUGE_BYTES, commit, backing.lock(), arena);
                if (backing.hostHugePages()) {
                    hugeErrno = HostMemory.adviseHugePages(region, 0, bytes);
                }
                long mapBytes = (recordBytes + PageSize.BYTES - 1) & -PageSize.BYTES;
                MemorySegment map = HostMemory.reserve(mapBytes, PageSize.BYTES, commit, false, arena);
                // 4 KiB host pages, also where THP is 'always': a reported block gives back 28 KiB
                // of its records, which a host huge page would keep (and khugepaged fill in again).
                HostMemory.adviseNoHugePages(map, 0, mapBytes);
                this.memMap = new MemMap(map, nrFrames);
            } else {
                this.region = arena.allocate(bytes, PageSize.HUGE_BYTES);
                this.memMap = new MemMap(arena.allocate(recordBytes, MemMap.RECORD_BYTES), nrFrames);
            }
        } catch (OutOfMemoryError | RuntimeException e) {
            arena.close();
            throw e;
        }
        this.hugePagesErrno = hugeErrno;
        this.failPoints = new FailPoints();
        FrameAllocator.Reporting reporting = null;
        if (backing.reports()) {
            HostMemory.Discard how = backing.lazyFree() ? HostMemory.Discard.FREE : HostMemory.Discard.DONTNEED;
            MemorySegment r = region;
            MemorySegment records = memMap.segment();
            // The records of a block start a host page only if the mem_map does (reserve aligns it).
            FrameAllocator.Discarder recordsBack = (records.address() & (PageSize.BYTES - 1)) != 0 ? null
                    : (offset, length) -> HostMemory.discard(records, offset, length, HostMemory.Discard.DONTNEED);
            reporting = new FrameAllocator.Reporting(backing.reportDelayNanos(), how.zeroes(),
                    (offset, length) -> HostMemory.discard(r, offset, length, how), recordsBack);
        }
        this.frames = new FrameAllocator(memMap, region, failPoints, cacheBatch, cacheHigh, reporting);
        this.lockSlab = new LockSlab(region, memMap, frames, failPoints);
        memMap.setTypeRelease(0, MemMap.TYPE_ZERO);
    }

    /** How this zone is backed. */
    public Backing backing() {
        return backing;
    }

    /** 0 if the host took the {@code MADV_HUGEPAGE} advice (or none was asked for), else its errno. */
    public int hostHugePagesErrno() {
        return hugePagesErrno;
    }

    /** Number of 4 KiB frames. */
    public long frameCount() {
        return memMap.nrFrames();
    }

    /** The frame allocator. */
    public FrameAllocator frames() {
        ensureOpen();
        return frames;
    }

    /** Allocates an order-0 frame; {@link FrameAllocator#NO_FRAME} when exhausted. */
    public long allocFrame() {
        return frames.allocFrame();
    }

    /** Allocates 2^order contiguous, naturally aligned frames; {@link FrameAllocator#NO_FRAME} when none. */
    public long allocFrames(int order) {
        return frames.allocFrames(order);
    }

    /** Frees an order-0 frame. */
    public void freeFrame(long pfn) {
        frames.freeFrame(pfn);
    }

    /** Frees 2^order frames allocated together. */
    public void freeFrames(long pfn, int order) {
        frames.freeFrames(pfn, order);
    }

    /** The mem_map. */
    public MemMap memMap() {
        ensureOpen();
        return memMap;
    }

    /** The fail points of every allocation site of this memory. */
    public FailPoints failPoints() {
        return failPoints;
    }

    /** The debug-lock slab. */
    public LockSlab lockSlab() {
        ensureOpen();
        return lockSlab;
    }

    /** The whole frame region; byte {@code pfn << PAGE_SHIFT} starts frame {@code pfn}. */
    public MemorySegment region() {
        ensureOpen();
        return region;
    }

    /**
     * The bytes of the block of 2^order frames at {@code pfn}, a slice of the region.
     *
     * @throws IllegalArgumentException if the block is not inside the region
     */
    public MemorySegment frameSegment(long pfn, int order) {
        ensureOpen();
        Checks.inRange("order", order, 0, BuddyAllocator.MAX_ORDER);
        Checks.inRange("pfn", pfn, 0, frameCount() - (1L << order));
        return region.asSlice(pfn << PageSize.SHIFT, PageSize.BYTES << order);
    }

    /** Fills the block of 2^order frames at {@code pfn} with zeros. */
    public void zeroFrames(long pfn, int order) {
        frames.zeroFrames(pfn, order);
    }

    /**
     * A pin opens: the region stays until it closes. Counted before the check, so that it pairs
     * with {@link #close()}'s "closed, then count": either this sees the zone closed, or close
     * sees the pin.
     *
     * @throws IllegalStateException if the zone is closed
     */
    public void pinOpened() {
        openPins.incrementAndGet();
        if (closed) {
            pinClosed();
            throw new IllegalStateException("physical memory is closed");
        }
    }

    /** A pin closed; the last one after {@link #close()} releases the region. */
    public void pinClosed() {
        if (openPins.decrementAndGet() == 0 && closed) {
            release();
        }
    }

    /** Pins open now. */
    public long openPins() {
        return openPins.get();
    }

    /** Whether {@link #close()} has run. */
    public boolean isClosed() {
        return closed;
    }

    /**
     * Closes the zone: every later use fails with {@link IllegalStateException}. The region is
     * released now, or when the last open pin closes. Idempotent.
     */
    public void close() {
        closed = true;
        frames.close();
        if (openPins.get() == 0) {
            release();
        }
    }

    private void release() {
        if (released.compareAndSet(false, true)) {
            arena.close();
        }
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("physical memory is closed");
        }
    }
}
