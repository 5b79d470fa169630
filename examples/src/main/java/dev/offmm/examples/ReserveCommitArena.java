package dev.offmm.examples;

import dev.offmm.core.Advice;
import dev.offmm.core.AddressSpace;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Mmu;
import dev.offmm.core.Prot;

/**
 * A reserve-and-commit bump arena: reserve a large range with {@code PROT_NONE} (no frames, no
 * tables), commit it in chunks with {@code mprotect} as the bump pointer crosses them (faults
 * then populate pages on first touch), and {@link #reset()} by dropping the pages
 * ({@code DONTNEED}) and decommitting. The memory a caller sees is always zeroed.
 *
 * <p>Not thread-safe: one arena per thread, each allocating through its own {@link Mmu}.
 */
public final class ReserveCommitArena implements AutoCloseable {
    private final AddressSpace as;
    private final long base;
    private final long reserved;
    private final long chunk;
    private long committed;
    private long top;

    /** Reserves {@code reserved} bytes, committed {@code chunk} bytes at a time (multiples of 4 KiB). */
    public ReserveCommitArena(AddressSpace as, long reserved, long chunk) {
        if (chunk <= 0 || (chunk & 4095) != 0 || reserved < chunk || reserved % chunk != 0) {
            throw new IllegalArgumentException("reserved=" + reserved + ", chunk=" + chunk
                    + " (expected chunk a positive multiple of 4096 dividing reserved)");
        }
        this.as = as;
        this.reserved = reserved;
        this.chunk = chunk;
        this.base = as.mmap(0, reserved, Prot.NONE, MapFlags.NORESERVE);
    }

    /**
     * Allocates {@code size} bytes aligned to {@code align} (a power of two), committing chunks
     * as needed. Returns the virtual address.
     *
     * @throws IllegalStateException when the reservation is exhausted
     */
    public long allocate(long size, long align) {
        if (size <= 0 || align <= 0 || Long.bitCount(align) != 1) {
            throw new IllegalArgumentException("size=" + size + ", align=" + align + " (expected > 0, a power of two)");
        }
        long start = (top + align - 1) & -align;
        if (start + size > reserved) {
            throw new IllegalStateException("arena exhausted: " + reserved + " bytes reserved, " + top + " used");
        }
        long end = start + size;
        if (end > committed) {
            long newCommitted = Math.min(reserved, (end + chunk - 1) / chunk * chunk);
            as.mprotect(base + committed, newCommitted - committed, Prot.READ | Prot.WRITE);
            committed = newCommitted;
        }
        top = end;
        return base + start;
    }

    /** Drops every page and decommits: RSS goes back to zero, the reservation stays. */
    public void reset() {
        if (committed > 0) {
            as.madvise(base, committed, Advice.DONTNEED);
            as.mprotect(base, committed, Prot.NONE);
        }
        committed = 0;
        top = 0;
    }

    /** Bytes committed (readable and writable). */
    public long committed() {
        return committed;
    }

    /** Releases the reservation. */
    @Override
    public void close() {
        as.munmap(base, reserved);
    }
}
