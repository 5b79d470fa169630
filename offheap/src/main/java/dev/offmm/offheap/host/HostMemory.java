package dev.offmm.offheap.host;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * Address space from the host kernel: {@code mmap(2)}, {@code munmap(2)}, {@code madvise(2)} and
 * {@code mlock(2)} through FFM downcalls, with {@code errno} captured by the linker. This is
 * offmm's "hardware": a range is reserved with {@code MAP_NORESERVE}, so the host commits a page
 * only when it is first touched, and it can be given back ({@link #discard}) while the range
 * stays reserved.
 *
 * <p>{@code MAP_NORESERVE} means the host promises nothing: with overcommit, a reservation far
 * larger than the machine succeeds, and if the host runs out of memory at a first touch its OOM
 * killer, not offmm, decides what dies. {@link #reserve} with {@code populate} (and
 * {@code lock}) is the opposite contract: everything committed before it returns.
 *
 * <p>Where the host is not Linux, or the linker refuses, {@link #AVAILABLE} is false: callers
 * fall back to {@link Arena#allocate}, which zero-fills and commits everything up front.
 */
public final class HostMemory {
    private static final int PROT_READ = 1;
    private static final int PROT_WRITE = 2;
    private static final int MAP_PRIVATE = 2;
    private static final int MAP_ANONYMOUS = 0x20;
    private static final int MAP_NORESERVE = 0x4000;
    private static final int MAP_POPULATE = 0x8000;
    private static final int MADV_DONTNEED = 4;
    private static final int MADV_FREE = 8;
    private static final int MADV_HUGEPAGE = 14;
    private static final int MADV_NOHUGEPAGE = 15;
    /** {@code errno} for "out of memory or address space". */
    public static final int ENOMEM = 12;

    /** How a free range goes back to the host. */
    public enum Discard {
        /**
         * {@code MADV_DONTNEED}: the backing is dropped at once; the next touch faults in a zero
         * page, so memory discarded this way is known to be zero.
         */
        DONTNEED(MADV_DONTNEED),
        /**
         * {@code MADV_FREE}: the host may take the backing lazily, under its own memory pressure;
         * until then a touch finds the old bytes, so memory discarded this way is not known to be
         * zero. Cheaper when the memory is soon used again.
         */
        FREE(MADV_FREE);

        final int advice;

        Discard(int advice) {
            this.advice = advice;
        }

        /** Whether a range discarded this way reads as zeros afterwards. */
        public boolean zeroes() {
            return this == DONTNEED;
        }
    }

    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    private static final long ERRNO_OFFSET = CAPTURE.byteOffset(MemoryLayout.PathElement.groupElement("errno"));

    private static final MethodHandle MMAP;
    private static final MethodHandle MUNMAP;
    private static final MethodHandle MADVISE;
    private static final MethodHandle MLOCK;

    /** Whether the host calls are usable here (Linux, and the linker found them). */
    public static final boolean AVAILABLE;

    static {
        MethodHandle mmap = null;
        MethodHandle munmap = null;
        MethodHandle madvise = null;
        MethodHandle mlock = null;
        if (System.getProperty("os.name", "").startsWith("Linux")) {
            try {
                Linker linker = Linker.nativeLinker();
                Linker.Option errno = Linker.Option.captureCallState("errno");
                mmap = handle(linker, "mmap", FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG,
                        ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                        ValueLayout.JAVA_LONG), errno);
                FunctionDescriptor rangeOp = FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG,
                        ValueLayout.JAVA_LONG);
                munmap = handle(linker, "munmap", rangeOp, errno);
                mlock = handle(linker, "mlock", rangeOp, errno);
                madvise = handle(linker, "madvise", FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG,
                        ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT), errno);
            } catch (RuntimeException | LinkageError e) {
                mmap = null;
            }
        }
        boolean ok = mmap != null && munmap != null && madvise != null && mlock != null;
        MMAP = ok ? mmap : null;
        MUNMAP = ok ? munmap : null;
        MADVISE = ok ? madvise : null;
        MLOCK = ok ? mlock : null;
        AVAILABLE = ok;
    }

    private HostMemory() {
    }

    @SuppressWarnings("restricted")
    private static MethodHandle handle(Linker linker, String name, FunctionDescriptor fd, Linker.Option errno) {
        MemorySegment sym = linker.defaultLookup().find(name).orElse(MemorySegment.NULL);
        return sym.equals(MemorySegment.NULL) ? null : linker.downcallHandle(sym, fd, errno);
    }

    /**
     * Reserves {@code bytes} of zero-filled, readable and writable address space aligned to
     * {@code alignment} (a power of two, at least 4 KiB), private and anonymous, tied to
     * {@code arena}: closing the arena unmaps it. With {@code populate} the host commits every
     * page now ({@code MAP_POPULATE}), and with {@code lock} also pins it ({@code mlock}); without
     * them, nothing is committed until touched ({@code MAP_NORESERVE}).
     *
     * @throws HostCallException with the host's errno if the host refuses
     * @throws IllegalStateException if {@link #AVAILABLE} is false
     */
    @SuppressWarnings("restricted")
    public static MemorySegment reserve(long bytes, long alignment, boolean populate, boolean lock, Arena arena) {
        requireAvailable();
        if (bytes <= 0 || Long.bitCount(alignment) != 1 || alignment < 4096 || bytes > Long.MAX_VALUE - alignment) {
            throw new IllegalArgumentException("bytes=" + bytes + ", alignment=" + alignment
                    + " (expected bytes > 0 and a power-of-two alignment >= 4096)");
        }
        int flags = MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : MAP_NORESERVE);
        long span = bytes + alignment;
        long base;
        try (Arena call = Arena.ofConfined()) {
            MemorySegment state = call.allocate(CAPTURE);
            base = (long) MMAP.invokeExact(state, 0L, span, PROT_READ | PROT_WRITE, flags, -1, 0L);
            if (base == -1L) {
                throw new HostCallException("mmap", errno(state));
            }
        } catch (HostCallException e) {
            throw e;
        } catch (Throwable e) {
            throw new IllegalStateException("mmap downcall failed", e);
        }
        long start = (base + alignment - 1) & -alignment;
        // Trim the slack on both sides: only the aligned range stays mapped.
        unmapQuietly(base, start - base);
        unmapQuietly(start + bytes, base + span - (start + bytes));
        // MAP_POPULATE committed the slack too, for as long as the two trims took.
        if (populate && lock) {
            int e = rangeCall(MLOCK, start, bytes);
            if (e != 0) {
                unmapQuietly(start, bytes);
                throw new HostCallException("mlock", e);
            }
        }
        return MemorySegment.ofAddress(start).reinterpret(bytes, arena, s -> unmapQuietly(start, bytes));
    }

    /**
     * Gives the backing of {@code [offset, offset + length)} of {@code region} (a reservation of
     * {@link #reserve}) back to the host, the range staying reserved. Returns 0, or the errno.
     */
    public static int discard(MemorySegment region, long offset, long length, Discard how) {
        return advise(region, offset, length, how.advice);
    }

    /**
     * {@code MADV_HUGEPAGE} over {@code [offset, offset + length)} of {@code region}: the host
     * backs it with 2 MiB pages where it can. Returns 0, or the errno.
     */
    public static int adviseHugePages(MemorySegment region, long offset, long length) {
        return advise(region, offset, length, MADV_HUGEPAGE);
    }

    /**
     * {@code MADV_NOHUGEPAGE} over {@code [offset, offset + length)} of {@code region}: the host
     * keeps it in 4 KiB pages even where THP is {@code always}. Returns 0, or the errno.
     */
    public static int adviseNoHugePages(MemorySegment region, long offset, long length) {
        return advise(region, offset, length, MADV_NOHUGEPAGE);
    }

    private static int advise(MemorySegment region, long offset, long length, int advice) {
        requireAvailable();
        if (offset < 0 || length <= 0 || offset > region.byteSize() - length) {
            throw new IllegalArgumentException("offset=" + offset + ", length=" + length
                    + " (expected a range inside " + region.byteSize() + " bytes)");
        }
        long address = region.address() + offset;
        try (Arena call = Arena.ofConfined()) {
            MemorySegment state = call.allocate(CAPTURE);
            int r = (int) MADVISE.invokeExact(state, address, length, advice);
            return r == 0 ? 0 : errno(state);
        } catch (Throwable e) {
            throw new IllegalStateException("madvise downcall failed", e);
        }
    }

    private static int rangeCall(MethodHandle h, long address, long length) {
        try (Arena call = Arena.ofConfined()) {
            MemorySegment state = call.allocate(CAPTURE);
            int r = (int) h.invokeExact(state, address, length);
            return r == 0 ? 0 : errno(state);
        } catch (Throwable e) {
            throw new IllegalStateException("downcall failed", e);
        }
    }

    private static void unmapQuietly(long address, long length) {
        if (length > 0) {
            // munmap of a range we mapped fails only on bad arguments, which would be our bug.
            int e = rangeCall(MUNMAP, address, length);
            if (e != 0) {
                throw new IllegalStateException("munmap(" + Long.toHexString(address) + ", " + length + ") failed: errno " + e);
            }
        }
    }

    private static int errno(MemorySegment state) {
        return state.get(ValueLayout.JAVA_INT, ERRNO_OFFSET);
    }

    private static void requireAvailable() {
        if (!AVAILABLE) {
            throw new IllegalStateException("host memory calls (mmap, madvise) are not available on this platform");
        }
    }
}
