package dev.offmm.examples.arena;

import dev.offmm.core.Advice;
import dev.offmm.core.AddressSpace;
import dev.offmm.core.FaultException;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Mmu;
import dev.offmm.core.Prot;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A reserve-and-commit bump arena: one large range of virtual memory reserved once, blocks
 * bump-allocated from it, pages committed by the fault of their first touch, and {@link #reset()}
 * giving every page back while keeping the reservation, so resident memory falls to zero at once
 * (FFM's arenas give memory back only when they are closed, and then lose the range).
 *
 * <pre>{@code
 * try (ReserveCommitArena arena = ReserveCommitArena.builder(as).reserve(16L << 30).build();
 *      Mmu mmu = as.attach()) {
 *     long a = arena.allocate(1000, 8);      // a virtual address; nothing resident yet
 *     mmu.putLong(a, 42);                    // first touch: a zero-filled page
 *     arena.reset();                         // every page back; the next allocate starts over
 * }
 * }</pre>
 *
 * <h2>Reserve, commit, reset</h2>
 * The reservation is {@code mmap(PROT_NONE, MAP_NORESERVE)}: no frame and no page table. As the
 * bump pointer crosses a {@code chunk} boundary, the chunk is made readable and writable
 * ({@code mprotect}); a page of it takes a frame only when it is first touched (a zero-fill
 * fault). {@link #reset()} drops every page of the committed range (the address space's
 * {@code rssPages} is 0 afterwards) and makes it {@code PROT_NONE} again, so a block kept past a
 * reset faults ({@link FaultException}, {@code ACCERR}) instead of reading another block's
 * bytes, until the bump pointer commits its range again (then it reads zeros). Memory handed
 * out is always zero.
 *
 * <h2>Page tables, and memory the host gets back</h2>
 * {@code DONTNEED} frees the pages but keeps the page tables, as in the kernel. A page table is
 * allocated by the fault that first touches its 2 MiB of address space, from the same frames as
 * the data pages, so each kept table sits inside a 2 MiB block of otherwise free frames; the
 * physical memory gives back to the host only whole free 2 MiB blocks (free page reporting,
 * after {@code PhysicalMemory.Builder.reportFreeAfter}), and one table per block keeps all of
 * them: {@code rssPages} would be 0 but the process's RSS would not fall at all. So by default
 * {@link #reset()} maps the committed range afresh ({@code mmap(MAP_FIXED, PROT_NONE)} over it),
 * which frees pages and tables alike and keeps the address range; the freed blocks go back to
 * the host after the report delay. {@link Builder#keepPageTables} keeps the tables instead
 * ({@code DONTNEED} and {@code mprotect(PROT_NONE)}) for a process that refills at once and does
 * not care about its RSS between fills.
 *
 * <h2>Huge pages</h2>
 * {@link Builder#hugePages} asks for offmm's transparent huge pages: a first write commits and
 * zeroes 2 MiB at once (one fault instead of 512, and no PTE table), and a reset frees whole
 * 2 MiB frames, which go back to the host without waiting on any table. The fastest setting for
 * arenas of many MiB; resident memory then grows 2 MiB at a time.
 *
 * <h2>Guard pages</h2>
 * With {@code guardPages}, each block is followed by a {@code PROT_NONE} page and placed so that
 * it ends as close to that page as its alignment allows (Electric Fence's layout): a write past
 * the end of the block by more than its alignment slack is a {@link FaultException}
 * ({@code ACCERR}) and writes nothing. Each guard costs an {@code mprotect}, two VMAs and a 4 KiB
 * page of address space (no memory): a debugging mode, bounded by the space's
 * {@code maxMapCount} (about 32 K blocks with the default 65,530).
 *
 * <h2>Addresses, not segments</h2>
 * A block is a virtual address, accessed through the calling thread's {@link Mmu}
 * ({@code putLong}, {@code read(va, MemorySegment)}, ...). A {@code MemorySegment} view would have
 * to be a pinned page ({@link Mmu#pin}): one 4 KiB frame at a time (consecutive virtual pages are
 * not consecutive frames), confined to the pinning thread, and holding its frame even across a
 * reset; so a block of many pages could not be one segment, and a reset could not take the
 * memory back. The {@code Mmu} path checks every access against the mapping instead, which is
 * also what makes guard pages and use after reset fault.
 *
 * <h2>Threads</h2>
 * {@link #allocate} may be called from any number of threads: the bump pointer moves by
 * compare-and-set, and a thread that crosses a chunk boundary commits under a lock taken once per
 * chunk. Each thread touches its blocks through its own {@code Mmu}. {@link #reset()} and
 * {@link #close()} must happen after every allocation and access of the blocks they take back
 * (as a shared FFM arena's {@code close}, but not enforced: a block used across a reset faults,
 * or, once recommitted, reads zeros).
 */
public final class ReserveCommitArena implements AutoCloseable {
    /** Default commit chunk: 2 MiB, one PTE table's worth. */
    public static final long DEFAULT_CHUNK = 2L << 20;

    private static final long PAGE = AddressSpace.PAGE_SIZE;
    private static final long HUGE = 2L << 20;
    /** {@link #top} after {@link #close()}: no allocation fits. */
    private static final long CLOSED = -1;
    private static final VarHandle TOP;
    private static final VarHandle COMMITTED;

    static {
        try {
            MethodHandles.Lookup l = MethodHandles.lookup();
            TOP = l.findVarHandle(ReserveCommitArena.class, "top", long.class);
            COMMITTED = l.findVarHandle(ReserveCommitArena.class, "committed", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final AddressSpace as;
    private final long base;
    private final long reserved;
    private final long chunk;
    private final boolean guardPages;
    private final boolean keepPageTables;
    private final boolean hugePages;
    /** Serializes commits, reset and close. */
    private final Object commitLock = new Object();
    /**
     * Bytes from {@link #base} handed out (guards included), or {@link #CLOSED}: moved by CAS
     * (acquire read, volatile CAS), stored with release by reset and close.
     */
    private long top;
    /**
     * Bytes from {@link #base} that are readable and writable: stored with release under
     * {@link #commitLock} after the {@code mprotect}, read with acquire by allocations.
     */
    private long committed;

    /**
     * Reserves {@code reserved} bytes, committed {@code chunk} bytes at a time, without guard pages,
     * page tables released on reset; the same as {@code builder(as).reserve(reserved).commitChunk(chunk).build()}.
     */
    public ReserveCommitArena(AddressSpace as, long reserved, long chunk) {
        this(builder(as).reserve(reserved).commitChunk(chunk));
    }

    private ReserveCommitArena(Builder b) {
        if (b.chunk > b.reserved) {
            throw new IllegalArgumentException("commitChunk=" + b.chunk + ", reserve=" + b.reserved
                    + " (expected commitChunk <= reserve)");
        }
        this.as = b.as;
        this.reserved = b.reserved;
        this.chunk = b.chunk;
        this.guardPages = b.guardPages;
        this.keepPageTables = b.keepPageTables;
        this.hugePages = b.hugePages;
        if (hugePages && ((reserved | chunk) & (HUGE - 1)) != 0) {
            throw new IllegalArgumentException("reserve=" + reserved + ", commitChunk=" + chunk
                    + " (expected multiples of 2 MiB with hugePages)");
        }
        this.base = hugePages ? reserveAligned(as, reserved) : as.mmap(0, reserved, Prot.NONE, MapFlags.NORESERVE);
        if (hugePages) {
            as.madvise(base, reserved, Advice.HUGEPAGE);
        }
    }

    /** Reserves {@code bytes} at a 2 MiB boundary: 2 MiB more, then the ends unmapped. */
    private static long reserveAligned(AddressSpace as, long bytes) {
        long raw = as.mmap(0, bytes + HUGE, Prot.NONE, MapFlags.NORESERVE);
        long start = (raw + HUGE - 1) & -HUGE;
        if (start > raw) {
            as.munmap(raw, start - raw);
        }
        long tail = raw + bytes + HUGE - (start + bytes);
        if (tail > 0) {
            as.munmap(start + bytes, tail);
        }
        return start;
    }

    /** A builder of an arena in {@code as}: 1 GiB reserved, committed 2 MiB at a time, no guard pages. */
    public static Builder builder(AddressSpace as) {
        if (as == null) {
            throw new IllegalArgumentException("as=null (expected an address space)");
        }
        return new Builder(as);
    }

    /** Configuration of a {@link ReserveCommitArena}. */
    public static final class Builder {
        private final AddressSpace as;
        private long reserved = 1L << 30;
        private long chunk = DEFAULT_CHUNK;
        private boolean guardPages;
        private boolean keepPageTables;
        private boolean hugePages;

        private Builder(AddressSpace as) {
            this.as = as;
        }

        /** Bytes of address space to reserve: a positive multiple of 4 KiB (no memory until touched). */
        public Builder reserve(long bytes) {
            if (bytes <= 0 || (bytes & (PAGE - 1)) != 0) {
                throw new IllegalArgumentException("reserve=" + bytes + " (expected a positive multiple of 4096)");
            }
            this.reserved = bytes;
            return this;
        }

        /** Bytes made accessible at a time as the bump pointer crosses them: a positive multiple of 4 KiB. */
        public Builder commitChunk(long bytes) {
            if (bytes <= 0 || (bytes & (PAGE - 1)) != 0) {
                throw new IllegalArgumentException("commitChunk=" + bytes + " (expected a positive multiple of 4096)");
            }
            this.chunk = bytes;
            return this;
        }

        /** Whether each block is followed by a {@code PROT_NONE} guard page (default false). */
        public Builder guardPages(boolean on) {
            this.guardPages = on;
            return this;
        }

        /**
         * Whether {@link #reset()} keeps the page tables (default false): see the class comment.
         * Kept tables save their re-allocation, but pin the freed frames in the host.
         */
        public Builder keepPageTables(boolean on) {
            this.keepPageTables = on;
            return this;
        }

        /**
         * Whether the arena asks for transparent huge pages ({@code MADV_HUGEPAGE} over the
         * reservation, 2 MiB aligned; default false): a first touch then commits and zeroes a
         * whole 2 MiB page (one fault instead of 512, no PTE table) and a reset frees 2 MiB frames
         * whole. Needs a reservation and commit chunk in multiples of 2 MiB and the space's
         * {@code Thp.MADVISE} or {@code ALWAYS} (the default); guard pages split the huge pages
         * they fall in, and a read before the first write maps the 4 KiB zero page (offmm has
         * no huge zero page), after which the 2 MiB fill with 4 KiB pages. Resident memory grows
         * 2 MiB at a time.
         */
        public Builder hugePages(boolean on) {
            this.hugePages = on;
            return this;
        }

        /**
         * Reserves the range.
         *
         * @throws IllegalArgumentException if the commit chunk is larger than the reservation
         * @throws dev.offmm.core.VmException ENOMEM if the space has no room for the reservation
         */
        public ReserveCommitArena build() {
            return new ReserveCommitArena(this);
        }
    }

    /**
     * Allocates {@code size} zeroed bytes aligned to {@code align}, committing chunks as needed,
     * and returns the block's virtual address. Safe to call from many threads at once.
     *
     * @param size  bytes, at least 1, at most the reservation
     * @param align a power of two, at most the reservation
     * @return the address of the first byte
     * @throws IllegalArgumentException if {@code size} or {@code align} is out of range
     * @throws IllegalStateException    if the block does not fit in what is left of the reservation
     *                                  (nothing is allocated; {@link #reset()} makes room), or the
     *                                  arena is closed
     */
    public long allocate(long size, long align) {
        if (size <= 0 || size > reserved || align <= 0 || align > reserved || (align & (align - 1)) != 0) {
            throw new IllegalArgumentException("size=" + size + ", align=" + align
                    + " (expected 1 <= size <= " + reserved + ", align a power of two <= " + reserved + ")");
        }
        long cur;
        long start;
        long next;
        long guard;
        do {
            cur = (long) TOP.getAcquire(this);
            if (cur == CLOSED) {
                throw new IllegalStateException("arena closed");
            }
            // Aligned as addresses, not as offsets: the base is only page-aligned.
            start = ((base + cur + align - 1) & -align) - base;
            if (guardPages) {
                guard = (start + size + PAGE - 1) & -PAGE;
                start = ((base + guard - size) & -align) - base;
                next = guard + PAGE;
            } else {
                guard = -1;
                next = start + size;
            }
            if (next > reserved) {
                throw exhausted(size, align, cur);
            }
        } while (!TOP.compareAndSet(this, cur, next));
        commit(next);
        if (guardPages) {
            as.mprotect(base + guard, PAGE, Prot.NONE);
        }
        return base + start;
    }

    private IllegalStateException exhausted(long size, long align, long used) {
        return new IllegalStateException("arena exhausted: " + size + " bytes aligned to " + align
                + (guardPages ? " plus a guard page" : "") + " do not fit, " + used + " of " + reserved
                + " bytes reserved are in use (reset() the arena or reserve more)");
    }

    /** Makes {@code [0, limit)} accessible, a chunk at a time. */
    private void commit(long limit) {
        if ((long) COMMITTED.getAcquire(this) >= limit) {
            return;
        }
        synchronized (commitLock) {
            long c = (long) COMMITTED.getAcquire(this);
            if (c < limit) {
                long n = Math.min(reserved, (limit + chunk - 1) / chunk * chunk);
                as.mprotect(base + c, n - c, Prot.READ | Prot.WRITE);
                COMMITTED.setRelease(this, n);
            }
        }
    }

    /**
     * Gives every page back and moves the bump pointer back to the start; the reservation stays,
     * at the same address. Afterwards the address space holds no page of this arena
     * ({@code rssPages} falls by all of them at once) and the committed range is {@code PROT_NONE}
     * again. Must happen after every access of the blocks.
     *
     * <p>By default the committed range is mapped afresh ({@code mmap(MAP_FIXED, PROT_NONE)} over
     * it, which unmaps the pages and their page tables); with {@link Builder#keepPageTables} it is
     * {@code DONTNEED} and {@code mprotect(PROT_NONE)}, and the tables stay (as after the kernel's
     * {@code MADV_DONTNEED}).
     *
     * @throws IllegalStateException if the arena is closed
     */
    public void reset() {
        synchronized (commitLock) {
            if ((long) TOP.getAcquire(this) == CLOSED) {
                throw new IllegalStateException("arena closed");
            }
            long c = (long) COMMITTED.getAcquire(this);
            if (c > 0) {
                if (keepPageTables) {
                    as.madvise(base, c, Advice.DONTNEED);
                    as.mprotect(base, c, Prot.NONE);
                } else {
                    as.mmap(base, c, Prot.NONE, MapFlags.FIXED | MapFlags.NORESERVE);
                    if (hugePages) {
                        as.madvise(base, c, Advice.HUGEPAGE);
                    }
                }
            }
            COMMITTED.setRelease(this, 0L);
            TOP.setRelease(this, 0L);
        }
    }

    /** The first address of the reservation. */
    public long base() {
        return base;
    }

    /** Bytes of address space reserved. */
    public long reserved() {
        return reserved;
    }

    /** Bytes handed out since the last reset, alignment padding and guard pages included. */
    public long used() {
        long t = (long) TOP.getAcquire(this);
        return t == CLOSED ? 0 : t;
    }

    /** Bytes committed (readable and writable); resident only where touched. */
    public long committed() {
        return (long) COMMITTED.getAcquire(this);
    }

    /** Whether {@link #reset()} keeps the page tables. */
    public boolean keepPageTables() {
        return keepPageTables;
    }

    /** Whether the arena asks for transparent huge pages. */
    public boolean hugePages() {
        return hugePages;
    }

    /** Whether each block is followed by a guard page. */
    public boolean guardPages() {
        return guardPages;
    }

    /** Releases the reservation and every page in it. Idempotent. */
    @Override
    public void close() {
        synchronized (commitLock) {
            if ((long) TOP.getAcquire(this) == CLOSED) {
                return;
            }
            TOP.setRelease(this, CLOSED);
            COMMITTED.setRelease(this, 0L);
            as.munmap(base, reserved);
        }
    }

    @Override
    public String toString() {
        return "ReserveCommitArena[base=0x" + Long.toHexString(base) + ", reserved=" + reserved + ", used=" + used()
                + ", committed=" + committed() + (guardPages ? ", guard pages" : "") + (hugePages ? ", huge pages" : "") + "]";
    }
}
