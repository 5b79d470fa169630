package dev.offmm.bench.scale;

import dev.offmm.bench.kernel.Libc;
import dev.offmm.core.Advice;
import dev.offmm.core.AddressSpace;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Mmu;
import dev.offmm.core.Prot;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The per-thread loops. One operation is one page faulted. Each loop has an offmm body (through
 * the thread's {@link Mmu}, so a touch is a TLB miss, a fault and a retry, as on hardware) and a
 * host-kernel body (real {@code mmap}/{@code madvise}/{@code munmap} through FFM).
 */
public enum Workload {
    /** page_fault1: mmap 128 MiB, write one byte per page, munmap. */
    PF1("pf1", "mmap, write-fault every page, munmap (will-it-scale page_fault1)"),
    /** Read faults: mmap, read one byte per page (zero page), munmap. */
    PF4("pf4", "mmap, read-fault every page (zero page), munmap"),
    /** One big VMA; each thread write-faults its own 2 MiB regions and drops them: no shared PTE table. */
    DISJOINT("disjoint", "own 2 MiB regions of one VMA: fault 512 pages, DONTNEED; threads share no PTE table"),
    /** Threads interleave 64 KiB runs inside the same 2 MiB regions: split locks still contend. */
    SHARED_TABLE("shared-table", "interleaved 64 KiB runs of the same 2 MiB regions: fault 16 pages, DONTNEED"),
    /**
     * Transparent huge pages: each thread maps 256 MiB in its own 1 GiB region (its own PMD table),
     * advises HUGEPAGE, write-faults every 2 MiB, munmaps. One op is one 2 MiB fault.
     */
    THP("thp", "own 1 GiB region: mmap 256 MiB, madvise HUGEPAGE, write-fault every 2 MiB, munmap"),
    /** The same loop with MAP_HUGETLB (the kernel row is its MADV_HUGEPAGE loop: the host has no hugetlb pool). */
    HUGETLB("hugetlb", "own 1 GiB region: mmap 256 MiB HUGETLB, write-fault every 2 MiB, munmap");

    /** Bytes per thread mapping of pf1/pf4. */
    static final long MAPPING = 128L << 20;
    /** 2 MiB regions per thread for disjoint. */
    static final int REGIONS_PER_THREAD = 4;
    /** 2 MiB regions shared by all threads for shared-table. */
    static final int SHARED_REGIONS = 16;
    private static final long PAGE = 4096;
    private static final long REGION = 2L << 20;
    private static final long RUN = 64L << 10;
    /** Bytes per thread mapping of thp/hugetlb. */
    static final long HUGE_MAPPING = 256L << 20;
    /** Where thread t's thp/hugetlb mapping goes: its own 1 GiB region. */
    private static final long HUGE_BASE = 64L << 30;
    private static final long GIB = 1L << 30;

    private final String cliName;
    private final String description;

    Workload(String cliName, String description) {
        this.cliName = cliName;
        this.description = description;
    }

    /** The name on the command line and in reports. */
    public String cliName() {
        return cliName;
    }

    /** One line for --help. */
    public String description() {
        return description;
    }

    /** The workload named {@code name}. */
    public static Workload parse(String name) {
        for (Workload w : values()) {
            if (w.cliName.equals(name)) {
                return w;
            }
        }
        throw new IllegalArgumentException("workload=" + name + " (expected pf1, pf4, disjoint, shared-table, thp or hugetlb)");
    }

    /** Whether one op is a 2 MiB fault (the floor then zeroes 2 MiB frames). */
    boolean huge() {
        return this == THP || this == HUGETLB;
    }

    /** Physical memory an offmm run with {@code threads} needs. */
    long physicalBytes(int threads) {
        long data = switch (this) {
            case PF1, PF4 -> threads * MAPPING;
            case DISJOINT -> threads * REGIONS_PER_THREAD * REGION;
            case SHARED_TABLE -> SHARED_REGIONS * REGION;
            case THP, HUGETLB -> threads * HUGE_MAPPING * 2;
        };
        long bytes = data + data / 8 + (64L << 20);
        return (bytes + REGION - 1) & -REGION;
    }

    /** The frames one thread's loop cycles through: what the zeroing floor zeroes per thread. */
    long poolBytesPerThread(int threads) {
        return switch (this) {
            case PF1, PF4 -> MAPPING;
            case DISJOINT -> REGIONS_PER_THREAD * REGION;
            case SHARED_TABLE -> SHARED_REGIONS * REGION / threads;
            case THP, HUGETLB -> HUGE_MAPPING;
        };
    }

    /** Bytes of the one shared VMA of the disjoint and shared-table loops (0: none). */
    long sharedBytes(int threads) {
        return switch (this) {
            case PF1, PF4, THP, HUGETLB -> 0;
            case DISJOINT -> threads * REGIONS_PER_THREAD * REGION;
            case SHARED_TABLE -> SHARED_REGIONS * REGION;
        };
    }

    /**
     * One round of the offmm loop for thread {@code t} of {@code threads}; {@code shared} is the
     * shared VMA's address. Adds each faulted page to {@code ops} as it goes.
     */
    void offmmRound(AddressSpace as, Mmu mmu, long shared, int t, int threads, OpsCounter ops) {
        switch (this) {
            case PF1, PF4 -> {
                long a = as.mmap(0, MAPPING, Prot.READ | Prot.WRITE, MapFlags.NONE);
                boolean write = this == PF1;
                for (long off = 0; off < MAPPING; off += PAGE) {
                    if (write) {
                        mmu.putByte(a + off, (byte) 1);
                    } else {
                        mmu.getByte(a + off);
                    }
                    ops.increment();
                }
                as.munmap(a, MAPPING);
            }
            case DISJOINT -> {
                for (int r = 0; r < REGIONS_PER_THREAD; r++) {
                    long region = shared + ((long) t * REGIONS_PER_THREAD + r) * REGION;
                    for (long off = 0; off < REGION; off += PAGE) {
                        mmu.putByte(region + off, (byte) 1);
                        ops.increment();
                    }
                    as.madvise(region, REGION, Advice.DONTNEED);
                }
            }
            case SHARED_TABLE -> {
                for (int r = 0; r < SHARED_REGIONS; r++) {
                    for (long run = t; run < REGION / RUN; run += threads) {
                        long base = shared + r * REGION + run * RUN;
                        for (long off = 0; off < RUN; off += PAGE) {
                            mmu.putByte(base + off, (byte) 1);
                            ops.increment();
                        }
                        as.madvise(base, RUN, Advice.DONTNEED);
                    }
                }
            }
            case THP, HUGETLB -> {
                long at = HUGE_BASE + t * GIB;
                int flags = MapFlags.FIXED | (this == HUGETLB ? MapFlags.HUGETLB : 0);
                long a = as.mmap(at, HUGE_MAPPING, Prot.READ | Prot.WRITE, flags);
                if (this == THP) {
                    as.madvise(a, HUGE_MAPPING, Advice.HUGEPAGE);
                }
                for (long off = 0; off < HUGE_MAPPING; off += REGION) {
                    mmu.putByte(a + off, (byte) 1);
                    ops.increment();
                }
                as.munmap(a, HUGE_MAPPING);
            }
            default -> throw new IllegalStateException(name());
        }
    }

    /** One round of the same loop against the host kernel; {@code shared} is the shared mapping. */
    void kernelRound(MemorySegment shared, int t, int threads, OpsCounter ops) {
        switch (this) {
            case PF1, PF4 -> {
                MemorySegment m = Libc.mmapAnon(MAPPING, Libc.PROT_RW);
                boolean write = this == PF1;
                for (long off = 0; off < MAPPING; off += PAGE) {
                    if (write) {
                        m.set(ValueLayout.JAVA_BYTE, off, (byte) 1);
                    } else {
                        ops.sink(m.get(ValueLayout.JAVA_BYTE, off));
                    }
                    ops.increment();
                }
                Libc.munmap(m);
            }
            case DISJOINT -> {
                for (int r = 0; r < REGIONS_PER_THREAD; r++) {
                    MemorySegment region = shared.asSlice(((long) t * REGIONS_PER_THREAD + r) * REGION, REGION);
                    for (long off = 0; off < REGION; off += PAGE) {
                        region.set(ValueLayout.JAVA_BYTE, off, (byte) 1);
                        ops.increment();
                    }
                    Libc.madvise(region, Libc.MADV_DONTNEED);
                }
            }
            case SHARED_TABLE -> {
                for (int r = 0; r < SHARED_REGIONS; r++) {
                    for (long run = t; run < REGION / RUN; run += threads) {
                        MemorySegment base = shared.asSlice(r * REGION + run * RUN, RUN);
                        for (long off = 0; off < RUN; off += PAGE) {
                            base.set(ValueLayout.JAVA_BYTE, off, (byte) 1);
                            ops.increment();
                        }
                        Libc.madvise(base, Libc.MADV_DONTNEED);
                    }
                }
            }
            case THP, HUGETLB -> {
                // 2 MiB more, to align the range inside; the host has no hugetlb pool, so both use THP.
                MemorySegment m = Libc.mmapAnon(HUGE_MAPPING + REGION, Libc.PROT_RW);
                long skew = (REGION - (m.address() & (REGION - 1))) & (REGION - 1);
                MemorySegment aligned = m.asSlice(skew, HUGE_MAPPING);
                Libc.madvise(aligned, Libc.MADV_HUGEPAGE);
                for (long off = 0; off < HUGE_MAPPING; off += REGION) {
                    aligned.set(ValueLayout.JAVA_BYTE, off, (byte) 1);
                    ops.increment();
                }
                Libc.munmap(m);
            }
            default -> throw new IllegalStateException(name());
        }
    }
}
