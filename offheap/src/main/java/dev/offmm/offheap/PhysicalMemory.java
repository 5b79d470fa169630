package dev.offmm.offheap;

import dev.offmm.offheap.host.HostCallException;
import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.page.PageSize;
import dev.offmm.offheap.zone.Zone;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Supplier;

/**
 * "Physical" memory: one 2 MiB-aligned region reserved from the host, handed out as
 * frames named by their pfn (a frame's bytes start at {@code pfn << PAGE_SHIFT}), plus the mem_map of
 * 64-byte records, one per frame, in a second reservation.
 *
 * <h2>It costs the host only what it holds</h2>
 * Like a guest under a hypervisor: the capacity is reserved ({@code mmap} with
 * {@code MAP_NORESERVE}), so creating even 64 GiB takes microseconds and commits nothing; the
 * host commits a page when offmm first touches it, and a struct page is first written when its
 * frame is first handed out (memory above the highest frame ever used is brought online 2 MiB
 * at a time as the free lists run dry). Free 2 MiB blocks that stay free for
 * {@link Builder#reportFreeAfter} (2 s by default) are given back to the host
 * ({@code MADV_DONTNEED}; free page reporting), and handed out again without zeroing, since the
 * host refills them with zeros, and with them 28 KiB of the 32 KiB of their struct pages (the
 * host pages of the 511 tail records; the one with the head record stays). Frames parked in the
 * per-thread caches (at most {@link #DEFAULT_CACHE_HIGH} per thread), the struct pages of frames
 * in use, cached or not yet reported, and 4 KiB of struct pages per reported block (1/512 of the
 * memory once used) stay committed.
 *
 * <p>{@code MAP_NORESERVE} means the host promises nothing: on an overcommitting host a capacity
 * far beyond the machine succeeds, and if the host runs out of memory when offmm first touches a
 * page, the host's OOM killer, not offmm, decides what dies. For the old guarantee,
 * {@link Builder#commitUpFront} commits everything at create (and {@link Builder#lockInMemory}
 * pins it), at the cost of the whole capacity in time and memory from the start.
 *
 * <p>Pfn 0 is reserved for the whole life of the memory as the shared zero page, so neither a
 * page-table entry nor a ptl word ever names it by accident.
 *
 * <p>{@link #close()} first closes every address space still open on this memory, then releases
 * both regions at once. Any use after close, from any thread, fails with
 * {@link IllegalStateException} (ours, or the FFM runtime's for an access that raced with the
 * close); it never touches freed memory.
 */
public final class PhysicalMemory implements AutoCloseable {
    /** Bytes per frame. */
    public static final long PAGE_SIZE = PageSize.BYTES;
    /** log2 of {@link #PAGE_SIZE}. */
    public static final int PAGE_SHIFT = PageSize.SHIFT;
    /** Bytes per order-9 frame, the region's alignment and size granule. */
    public static final long HUGE_PAGE_SIZE = PageSize.HUGE_BYTES;
    /** Default size: 512 MiB, comfortable on a 2-core 24 GiB machine. */
    public static final long DEFAULT_BYTES = 512L << 20;
    /** Largest size accepted: 64 GiB. */
    public static final long MAX_BYTES = 64L << 30;
    /** The pfn of the shared zero page. */
    public static final long ZERO_PFN = 0;
    /** The default bound of a per-thread frame cache, in frames. */
    public static final int DEFAULT_CACHE_HIGH = 512;

    private final Zone zone;
    private final long bytes;
    /** Address spaces (and other users) open on this memory; guarded by {@code this}. */
    private final Set<AutoCloseable> users = new LinkedHashSet<>();
    /** Set when close() starts; guarded by {@code this}. A closing memory takes no new user. */
    private boolean closing;
    private volatile boolean closed;

    /** Default {@link Builder#reportFreeAfter}: the kernel's {@code PAGE_REPORTING_DELAY}. */
    public static final Duration DEFAULT_REPORT_DELAY = Duration.ofSeconds(2);
    /** Longest {@link Builder#reportFreeAfter} accepted. */
    public static final Duration MAX_REPORT_DELAY = Duration.ofDays(1);
    /**
     * System property (milliseconds) that overrides the default delay of builders that do not
     * set one, e.g. {@code -Doffmm.reportFreeAfterMs=0} runs a test suite in the most hostile
     * setting; a negative value turns reporting off.
     */
    public static final String REPORT_DELAY_PROPERTY = "offmm.reportFreeAfterMs";

    /** How free memory goes back to the host. */
    public enum Discard {
        /** {@code MADV_DONTNEED}: at once; the memory is zero when handed out again (not zeroed twice). */
        DONTNEED,
        /**
         * {@code MADV_FREE}: the host takes it lazily, under its own pressure; cheaper to reuse,
         * but RSS falls only when the host needs memory, and offmm zeroes it again when reused.
         */
        FREE
    }

    private PhysicalMemory(long bytes, int cacheBatch, int cacheHigh, Zone.Backing backing) {
        this.bytes = bytes;
        try {
            this.zone = new Zone(bytes, cacheBatch, cacheHigh, backing);
        } catch (HostCallException e) {
            throw new HostMemoryException(bytes, e.call(), e.errno(), e);
        }
    }

    /**
     * Creates physical memory of {@code bytes}, a positive multiple of 2 MiB, with the defaults
     * of {@link #builder()}: reserved, committed as used, free memory reported after 2 s.
     *
     * @param bytes the capacity, a positive multiple of 2 MiB, at most {@link #MAX_BYTES}
     * @return the new memory; close it when done
     * @throws IllegalArgumentException if {@code bytes} is not a positive multiple of 2 MiB or too large
     * @throws HostMemoryException if the host refuses to reserve it
     */
    public static PhysicalMemory create(long bytes) {
        return builder().bytes(bytes).build();
    }

    /** {@return a builder with the defaults, each of which its setters describe} */
    public static Builder builder() {
        return new Builder();
    }

    /** Configuration of a {@link PhysicalMemory}. */
    public static final class Builder {
        private long bytes = DEFAULT_BYTES;
        /** 0: sized from the memory (see {@link #frameCache}). */
        private int cacheBatch;
        private int cacheHigh;
        /** Null: the default (the system property, or 2 s). */
        private Duration reportDelay;
        private boolean reporting = true;
        private Discard discard = Discard.DONTNEED;
        private boolean hostHugePages;
        private boolean commitUpFront;
        private boolean lockInMemory;

        private Builder() {
        }

        /**
         * Size of the frame region: a multiple of 2 MiB, at most {@link #MAX_BYTES}.
         *
         * @param value bytes
         * @return this builder
         */
        public Builder bytes(long value) {
            Checks.inRange("bytes", value, HUGE_PAGE_SIZE, MAX_BYTES);
            Checks.aligned("bytes", value, HUGE_PAGE_SIZE);
            this.bytes = value;
            return this;
        }

        /**
         * The same as {@link #bytes}: the capacity reserved, committed only as it is used.
         *
         * @param value bytes, a multiple of 2 MiB
         * @return this builder
         */
        public Builder capacity(long value) {
            return bytes(value);
        }

        /**
         * Free 2 MiB blocks go back to the host once they have been free this long (at most 1.25
         * times it); {@link Duration#ZERO} gives them back as soon as the reporter sees them.
         * Default {@link #DEFAULT_REPORT_DELAY}, the kernel's page reporting delay; jemalloc's
         * comparable {@code dirty_decay_ms} is 10 s.
         *
         * @param delay at least {@link Duration#ZERO}, at most {@link #MAX_REPORT_DELAY}
         * @return this builder, with reporting on
         */
        public Builder reportFreeAfter(Duration delay) {
            if (delay == null || delay.isNegative() || delay.compareTo(MAX_REPORT_DELAY) > 0) {
                throw new IllegalArgumentException("reportFreeAfter=" + delay + " (expected 0 <= delay <= "
                        + MAX_REPORT_DELAY + ")");
            }
            this.reportDelay = delay;
            this.reporting = true;
            return this;
        }

        /**
         * Turns free page reporting on (the default) or off: off, freed memory stays committed until close.
         *
         * @param on whether free 2 MiB blocks go back to the host
         * @return this builder
         */
        public Builder reporting(boolean on) {
            this.reporting = on;
            return this;
        }

        /**
         * How reported memory goes back to the host; default {@link Discard#DONTNEED}.
         *
         * @param how the host call that gives a block back
         * @return this builder
         */
        public Builder discard(Discard how) {
            if (how == null) {
                throw new IllegalArgumentException("discard=null (expected DONTNEED or FREE)");
            }
            this.discard = how;
            return this;
        }

        /**
         * Advises the host to back the frame region with its own 2 MiB pages ({@code MADV_HUGEPAGE}),
         * so the 4 KiB frames inside one share a host TLB entry. Reporting gives back whole 2 MiB
         * blocks, so the two agree. Off by default (see bench/RESULTS.md for what it measures).
         *
         * @param on whether to advise {@code MADV_HUGEPAGE}
         * @return this builder
         */
        public Builder hostHugePages(boolean on) {
            this.hostHugePages = on;
            return this;
        }

        /**
         * Commits every page at create ({@code MAP_POPULATE}): the old guarantee that memory,
         * once created, is there. It costs the whole capacity in host memory and about 1-2.5 s
         * per GiB at create, and turns reporting off (it would undo the commit).
         *
         * @param on whether to commit the whole capacity at create
         * @return this builder
         */
        public Builder commitUpFront(boolean on) {
            this.commitUpFront = on;
            return this;
        }

        /**
         * Commits everything at create and locks it in memory ({@code mlock}): never swapped, never
         * reclaimed by the host. Needs {@code RLIMIT_MEMLOCK} of at least the capacity, or create
         * fails with a {@link HostMemoryException}.
         *
         * @param on whether to commit and {@code mlock} the whole capacity at create
         * @return this builder
         */
        public Builder lockInMemory(boolean on) {
            this.lockInMemory = on;
            if (on) {
                this.commitUpFront = true;
            }
            return this;
        }

        /**
         * Per-thread frame cache: {@code batch} frames move to or from the buddy allocator at a
         * time, and a cache keeps at most {@code high} (the kernel's pcp batch and high). By
         * default both are sized from the memory (see {@link #build()}).
         *
         * @param batch frames moved at a time, 1 to 4096
         * @param high frames a cache keeps at most, {@code batch} to 65536
         * @return this builder
         */
        public Builder frameCache(int batch, int high) {
            Checks.inRange("batch", batch, 1, 1 << 12);
            Checks.inRange("high", high, batch, 1 << 16);
            this.cacheBatch = batch;
            this.cacheHigh = high;
            return this;
        }

        /**
         * Allocates the memory. Unless set, the per-thread cache keeps up to
         * {@value #DEFAULT_CACHE_HIGH} frames (2 MiB; fewer in a memory under 128 MiB: 1/64 of it)
         * and moves an eighth of that at a time: large enough that frames freed by DONTNEED or
         * munmap come back to the same thread still in its CPU caches, and bounded by a constant
         * so that caches never hide much memory (an allocation drains them all before it fails).
         *
         * @return the new memory; close it when done
         * @throws HostMemoryException if the host refuses to reserve, commit or lock it
         */
        public PhysicalMemory build() {
            int high = cacheHigh;
            int batch = cacheBatch;
            if (high == 0) {
                high = (int) Math.max(8, Math.min(DEFAULT_CACHE_HIGH, (bytes >>> PAGE_SHIFT) / 16));
                batch = Math.max(1, Math.min(63, high / 8));
            }
            long delay = reporting ? delayNanos() : -1;
            return new PhysicalMemory(bytes, batch, high,
                    new Zone.Backing(delay, discard == Discard.FREE, hostHugePages, commitUpFront, lockInMemory));
        }

        private long delayNanos() {
            if (reportDelay != null) {
                return reportDelay.toNanos();
            }
            String p = System.getProperty(REPORT_DELAY_PROPERTY);
            if (p == null || p.isBlank()) {
                return DEFAULT_REPORT_DELAY.toNanos();
            }
            try {
                long ms = Long.parseLong(p.trim());
                return ms < 0 ? -1 : Math.min(ms, MAX_REPORT_DELAY.toMillis()) * 1_000_000L;
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(REPORT_DELAY_PROPERTY + "=" + p + " (expected milliseconds)", e);
            }
        }
    }

    /** {@return the size of the frame region in bytes} */
    public long bytes() {
        return bytes;
    }

    /** {@return the number of 4 KiB frames} */
    public long frameCount() {
        return zone.frameCount();
    }

    /**
     * {@return the frames an allocation can get now: free in the buddy lists, plus those parked in
     * threads' frame caches, which an allocation drains before it reports exhaustion}
     */
    public long freeFrameCount() {
        ensureOpen();
        return zone.frames().freeFrameCount();
    }

    /**
     * {@return the part of {@link #freeFrameCount()} parked in threads' frame caches (at most
     * {@value #DEFAULT_CACHE_HIGH} per thread by default)}
     */
    public long cachedFrameCount() {
        ensureOpen();
        return zone.frames().cachedFrameCount();
    }

    /** {@return the frames in use: every frame except the free ones and the reserved zero page} */
    public long usedFrameCount() {
        return frameCount() - 1 - freeFrameCount();
    }

    /** {@return the address space reserved from the host: the frame region and the struct-page region} */
    public long reservedBytes() {
        return bytes + (frameCount() << MemMap.RECORD_SHIFT);
    }

    /**
     * {@return the frames brought online so far (handed out at least once, or split off a block
     * that was); the rest of the capacity has never been touched and costs the host nothing}
     */
    public long onlineFrameCount() {
        ensureOpen();
        return zone.frames().onlineFrameCount();
    }

    /** {@return the free frames that cost the host nothing: given back by reporting, or never touched} */
    public long reportedFrameCount() {
        ensureOpen();
        return zone.frames().reportedFrameCount();
    }

    /**
     * {@return the frame bytes the host holds for this memory, estimated: online and not reported (in use,
     * cached, or free but not yet reported)} An upper bound: a frame handed out but never written
     * costs the host nothing either. With {@link Builder#commitUpFront}, the whole capacity.
     */
    public long committedBytes() {
        ensureOpen();
        if (zone.backing().commitUpFront()) {
            return bytes;
        }
        return (zone.frames().onlineFrameCount() - zone.frames().reportedFrameCount()) << PAGE_SHIFT;
    }

    /**
     * {@return the struct-page bytes the host holds, estimated: the records of online frames, rounded up to
     * host pages, less the mem_map pages given back with reported free blocks (28 KiB of each 2 MiB
     * block's 32 KiB: all but the host page of its head record)} An upper bound, like
     * {@link #committedBytes()}: a block allocated again counts whole from then on, although only the
     * records it writes fault back in. With {@link Builder#commitUpFront} (no reporting), the whole mem_map.
     */
    public long structPageBytes() {
        ensureOpen();
        if (zone.backing().commitUpFront()) {
            return ((frameCount() << MemMap.RECORD_SHIFT) + PAGE_SIZE - 1) & -PAGE_SIZE;
        }
        // Given back first: every block counted there is online then, and online only grows.
        long back = zone.frames().memMapBytesGivenBack();
        long n = zone.frames().onlineFrameCount();
        return (((n << MemMap.RECORD_SHIFT) + PAGE_SIZE - 1) & -PAGE_SIZE) - back;
    }

    /** {@return the 2 MiB blocks given back to the host by free page reporting so far} */
    public long reportedBlocks() {
        ensureOpen();
        return zone.frames().reportedBlocks();
    }

    /**
     * {@return the reporting host calls that failed: for a block's frames (it stayed unreported and in use
     * by nobody), or for the mem_map pages of its tail records (the block was reported, they stayed committed)}
     */
    public long failedReports() {
        ensureOpen();
        return zone.frames().failedReports();
    }

    /**
     * The inside of this memory, for {@code dev.offmm.core}: frames, mem_map, region, locks. Its
     * package is exported to {@code dev.offmm.core} only, so on the module path no other code can
     * use what this returns.
     *
     * @return the zone
     */
    @SuppressWarnings("exports")
    public Zone zone() {
        return zone;
    }

    /** {@return whether {@link #close()} has run} */
    public boolean isClosed() {
        return closed;
    }

    /**
     * Creates a user of this memory (an address space) with {@code factory} and registers it, so
     * that {@link #close()} closes it before it releases the regions. The factory runs under this
     * memory's monitor: a {@code close()} that starts meanwhile waits for it, and none that has
     * started lets it run. For {@code dev.offmm.core}'s {@code AddressSpace.create}.
     *
     * @param <T> the user's type
     * @param factory creates the user; runs under this memory's monitor
     * @return the user, registered
     * @throws IllegalStateException if this memory is closed or closing
     */
    public <T extends AutoCloseable> T open(Supplier<T> factory) {
        synchronized (this) {
            if (closing) {
                throw new IllegalStateException("physical memory is closed");
            }
            T user = factory.get();
            users.add(user);
            return user;
        }
    }

    /**
     * Unregisters a user created with {@link #open}; does nothing if it is not registered.
     *
     * @param user the user {@link #open} returned
     */
    public void unregister(AutoCloseable user) {
        synchronized (this) {
            users.remove(user);
        }
    }

    /**
     * Closes every address space still open on this memory (each verifies that it leaked nothing),
     * then releases the regions. The regions are released even if closing a space fails; the
     * first failure is rethrown afterwards, with the others suppressed. Pinned pages still open
     * are reported (an {@link IllegalStateException} after everything else is done): their
     * segments stay valid, and the regions are released only when the last of them closes.
     * Idempotent.
     *
     * <p>Closing the address spaces first is what makes the wrong order safe: a space whose memory
     * is gone could not free its tables, so {@code try (PhysicalMemory m = ...; AddressSpace as =
     * ...)} and a forgotten {@code as.close()} both end with every frame and lock returned.
     */
    @Override
    public void close() {
        List<AutoCloseable> open;
        synchronized (this) {
            if (closing) {
                return;
            }
            closing = true;
            open = new ArrayList<>(users);
        }
        RuntimeException failure = null;
        for (AutoCloseable user : open) {
            try {
                user.close();
            } catch (Exception e) {
                RuntimeException r = e instanceof RuntimeException re ? re
                        : new IllegalStateException("closing " + user + " failed", e);
                if (failure == null) {
                    failure = r;
                } else {
                    failure.addSuppressed(r);
                }
            }
        }
        synchronized (this) {
            closed = true;
            users.clear();
        }
        zone.close();
        long pins = zone.openPins();
        if (pins > 0) {
            RuntimeException r = new IllegalStateException("physical memory closed with " + pins
                    + " pinned pages still open: their frames stay in use until each pin closes");
            if (failure == null) {
                failure = r;
            } else {
                failure.addSuppressed(r);
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("physical memory is closed");
        }
    }

    @Override
    public String toString() {
        return "PhysicalMemory[" + (bytes >>> 20) + " MiB, " + frameCount() + " frames"
                + (closed ? ", closed]" : ", " + zone.frames().freeFrameCount() + " free]");
    }
}
