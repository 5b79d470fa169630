package dev.offmm.core;

import dev.offmm.core.walk.MmWalk;
import dev.offmm.core.walk.MmWalkOps;
import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.PhysicalMemory;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Bounded many-thread stress with stated forbidden outcomes, in every lock mode.
 *
 * <p>Forbidden: a page mapped twice or to two frames, a written value lost or changed, a fault
 * failing with anything but MAPERR on a concurrently unmapped range, a walker seeing an entry
 * whose frame is free or a page table, any leak at close.
 */
class ConcurrentFaultStressTest {
    private static final long PAGE = 4096;
    private static final int THREADS = 4;

    static java.util.stream.Stream<VmConfig> modes() {
        return Modes.all();
    }

    /** Collects the pfn of every present data PTE in a range; fails on a duplicate. */
    private static Set<Long> mappedFrames(AddressSpace as, long start, long end) {
        Set<Long> pfns = new HashSet<>();
        as.walkPageRange(start, end, new MmWalkOps() {
            @Override
            public int pteEntry(long entry, long addr, long next, MmWalk walk) {
                if ((entry & 0x200) == 0) {
                    assertTrue(pfns.add(entry >>> 12 & ((1L << 40) - 1)), "frame mapped twice at 0x" + Long.toHexString(addr));
                }
                return 0;
            }
        });
        return pfns;
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldMapEachPageExactlyOnceWhenThreadsFaultTheSamePages(VmConfig config) {
        int pages = 1024;
        try (PhysicalMemory memory = PhysicalMemory.create(64L << 20)) {
            for (int round = 0; round < 3; round++) {
                try (AddressSpace as = AddressSpace.create(memory, config)) {
                    long a = as.mmap(0, pages * PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
                    List<Runnable> bodies = new ArrayList<>();
                    for (int t = 0; t < THREADS; t++) {
                        int tid = t;
                        bodies.add(() -> {
                            // Overlapping: every thread writes its own slot of every page, each
                            // starting at a different page so that faults on one PTE race.
                            for (int i = 0; i < pages; i++) {
                                int p = (i + tid * pages / THREADS) % pages;
                                if ((p + tid) % 3 == 0) {
                                    as.fault(a + p * PAGE, false);
                                }
                                as.putLong(a + p * PAGE + tid * 8L, tag(tid, p));
                            }
                        });
                    }
                    TestSupport.runAll(bodies);
                    assertEquals(pages, as.stats().rssPages());
                    assertEquals(pages, mappedFrames(as, a, a + pages * PAGE).size());
                    for (int p = 0; p < pages; p++) {
                        for (int t = 0; t < THREADS; t++) {
                            assertEquals(tag(t, p), as.getLong(a + p * PAGE + t * 8L), "page " + p + " thread " + t);
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldKeepDisjointFaultsIndependent(VmConfig config) {
        try (PhysicalMemory memory = PhysicalMemory.create(64L << 20);
             AddressSpace as = AddressSpace.create(memory, config)) {
            long region = 2L << 20;
            long a = as.mmap(0, THREADS * region, Prot.READ | Prot.WRITE, MapFlags.NONE);
            List<Runnable> bodies = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                long base = a + t * region;
                int tid = t;
                bodies.add(() -> {
                    for (long off = 0; off < region; off += PAGE) {
                        as.putLong(base + off, tag(tid, (int) (off / PAGE)));
                    }
                });
            }
            TestSupport.runAll(bodies);
            assertEquals(THREADS * region / PAGE, as.stats().rssPages());
            for (int t = 0; t < THREADS; t++) {
                for (long off = 0; off < region; off += 64 * PAGE) {
                    assertEquals(tag(t, (int) (off / PAGE)), as.getLong(a + t * region + off));
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldSurviveMmapAndMunmapRacingFaultsAndWalkers(VmConfig config) {
        try (PhysicalMemory memory = PhysicalMemory.create(64L << 20)) {
            MemMap map = memory.zone().memMap();
            try (AddressSpace as = AddressSpace.create(memory, config)) {
                long base = 0x100000000L;
                // Stable pages share the PTE table with the churned range [base + 64 pages, +64 pages).
                long stable = as.mmap(base, 64 * PAGE, Prot.READ | Prot.WRITE, MapFlags.FIXED);
                long churn = base + 64 * PAGE;
                for (int p = 0; p < 64; p++) {
                    as.putLong(stable + p * PAGE, tag(9, p));
                }
                AtomicBoolean stop = new AtomicBoolean();
                List<Runnable> bodies = new ArrayList<>();
                bodies.add(() -> {
                    for (int i = 0; i < 300; i++) {
                        as.mmap(churn, 64 * PAGE, Prot.READ | Prot.WRITE, MapFlags.FIXED);
                        if (i % 3 == 0) {
                            as.mprotect(churn, 32 * PAGE, Prot.READ);
                        }
                        if (i % 5 == 0) {
                            as.madvise(churn, 64 * PAGE, Advice.DONTNEED);
                        }
                        as.munmap(churn, 64 * PAGE);
                    }
                    stop.set(true);
                });
                for (int t = 0; t < 2; t++) {
                    int tid = t;
                    bodies.add(() -> {
                        long n = 0;
                        while (!stop.get()) {
                            long p = (n++ * 7 + tid) % 64;
                            try {
                                as.putLong(churn + p * PAGE, n);
                            } catch (FaultException e) {
                                if (e.kind() == FaultException.Kind.OOM) {
                                    throw e;
                                }
                            }
                            assertEquals(tag(9, (int) p), as.getLong(stable + p * PAGE));
                        }
                    });
                }
                bodies.add(() -> {
                    while (!stop.get()) {
                        as.walkPageRange(base, base + (2L << 20), new MmWalkOps() {
                            @Override
                            public int pteEntry(long entry, long addr, long next, MmWalk walk) {
                                long pfn = entry >>> 12 & ((1L << 40) - 1);
                                if ((entry & 0x200) == 0) {
                                    assertEquals(MemMap.TYPE_NONE, map.typeAcquire(pfn), "walker saw a table as data");
                                    assertTrue(map.mapcountVolatile(pfn) >= 1, "walker saw an unmapped frame");
                                    assertTrue((map.flagsAcquire(pfn) & MemMap.PG_ALLOCATED) != 0, "walker saw a free frame");
                                }
                                return 0;
                            }
                        });
                    }
                });
                TestSupport.runAll(bodies);
                assertEquals(64, as.stats().rssPages());
            }
        }
    }

    private static long tag(int thread, int page) {
        return ((long) thread << 32) | page | 0x5a00_0000_0000_0000L;
    }
}
