package dev.offmm.offheap;

import dev.offmm.offheap.page.PageSize;
import dev.offmm.offheap.zone.Zone;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Supplier;

/**
 * "Physical" memory: one 2 MiB-aligned region from a shared {@code Arena}, handed out as
 * frames named by their pfn (a frame's bytes start at {@code pfn << PAGE_SHIFT}), plus the mem_map of
 * 64-byte records, one per frame, in a second region of the same arena.
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

    private PhysicalMemory(long bytes, int cacheBatch, int cacheHigh) {
        this.bytes = bytes;
        this.zone = new Zone(bytes, cacheBatch, cacheHigh);
    }

    /** Creates physical memory of {@code bytes}, a positive multiple of 2 MiB. */
    public static PhysicalMemory create(long bytes) {
        return builder().bytes(bytes).build();
    }

    /** A builder with the defaults. */
    public static Builder builder() {
        return new Builder();
    }

    /** Configuration of a {@link PhysicalMemory}. */
    public static final class Builder {
        private long bytes = DEFAULT_BYTES;
        /** 0: sized from the memory (see {@link #frameCache}). */
        private int cacheBatch;
        private int cacheHigh;

        private Builder() {
        }

        /** Size of the frame region: a multiple of 2 MiB, at most {@link #MAX_BYTES}. */
        public Builder bytes(long value) {
            Checks.inRange("bytes", value, HUGE_PAGE_SIZE, MAX_BYTES);
            Checks.aligned("bytes", value, HUGE_PAGE_SIZE);
            this.bytes = value;
            return this;
        }

        /**
         * Per-thread frame cache: {@code batch} frames move to or from the buddy allocator at a
         * time, and a cache keeps at most {@code high} (the kernel's pcp batch and high). By
         * default both are sized from the memory (see {@link #build()}).
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
         */
        public PhysicalMemory build() {
            int high = cacheHigh;
            int batch = cacheBatch;
            if (high == 0) {
                high = (int) Math.max(8, Math.min(DEFAULT_CACHE_HIGH, (bytes >>> PAGE_SHIFT) / 16));
                batch = Math.max(1, Math.min(63, high / 8));
            }
            return new PhysicalMemory(bytes, batch, high);
        }
    }

    /** Size of the frame region in bytes. */
    public long bytes() {
        return bytes;
    }

    /** Number of 4 KiB frames. */
    public long frameCount() {
        return zone.frameCount();
    }

    /**
     * Frames an allocation can get now: free in the buddy lists, plus those parked in threads'
     * frame caches, which an allocation drains before it reports exhaustion.
     */
    public long freeFrameCount() {
        ensureOpen();
        return zone.frames().freeFrameCount();
    }

    /**
     * The part of {@link #freeFrameCount()} parked in threads' frame caches (at most
     * {@value #DEFAULT_CACHE_HIGH} per thread by default).
     */
    public long cachedFrameCount() {
        ensureOpen();
        return zone.frames().cachedFrameCount();
    }

    /** Frames in use: every frame except the free ones and the reserved zero page. */
    public long usedFrameCount() {
        return frameCount() - 1 - freeFrameCount();
    }

    /**
     * The inside of this memory, for {@code dev.offmm.core}: frames, mem_map, region, locks. Its
     * package is exported to {@code dev.offmm.core} only, so on the module path no other code can
     * use what this returns.
     */
    @SuppressWarnings("exports")
    public Zone zone() {
        return zone;
    }

    /** Whether {@link #close()} has run. */
    public boolean isClosed() {
        return closed;
    }

    /**
     * Creates a user of this memory (an address space) with {@code factory} and registers it, so
     * that {@link #close()} closes it before it releases the regions. The factory runs under this
     * memory's monitor: a {@code close()} that starts meanwhile waits for it, and none that has
     * started lets it run. For {@code dev.offmm.core}'s {@code AddressSpace.create}.
     *
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

    /** Unregisters a user created with {@link #open}; does nothing if it is not registered. */
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
