package dev.offmm.core;

import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.TableAlloc;
import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.frame.FrameAllocator;
import dev.offmm.offheap.inject.FailSite;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every allocation site made to fail, one call at a time, during a workload: each failure
 * surfaces as OOM or ENOMEM, leaves the address space consistent, and leaks nothing.
 */
class FaultInjectionTest {
    private static final long PAGE = 4096;

    static java.util.stream.Stream<VmConfig> modes() {
        return Modes.all();
    }

    /** mmap in two PMD and two PUD regions, touch pages, DONTNEED, munmap half. */
    private static void workload(AddressSpace as) {
        long a = as.mmap(0x40000000L - 8 * PAGE, 16 * PAGE, Prot.READ | Prot.WRITE, MapFlags.FIXED);
        long b = as.mmap(0x7f0000000000L, 16 * PAGE, Prot.READ | Prot.WRITE, MapFlags.FIXED);
        for (int p = 0; p < 16; p++) {
            as.putLong(a + p * PAGE, p + 1);
            if (p % 2 == 0) {
                as.getLong(b + p * PAGE);
            } else {
                as.putLong(b + p * PAGE, p);
            }
        }
        as.madvise(a, 4 * PAGE, Advice.DONTNEED);
        as.munmap(b, 8 * PAGE);
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldSurfaceEveryInjectedFailureWithoutLeaking(VmConfig config) {
        List<FailSite> sites = new ArrayList<>(List.of(FailSite.FRAME, FailSite.PAGE_TABLE));
        if (config.debugLocks()) {
            sites.add(FailSite.PTLOCK);
            sites.add(FailSite.SLAB_PAGE);
        }
        try (PhysicalMemory memory = PhysicalMemory.create(32L << 20)) {
            long free = memory.freeFrameCount();
            for (FailSite site : sites) {
                int injected = 0;
                for (int n = 1; n <= 60; n++) {
                    memory.zone().failPoints().disarmAll();
                    AddressSpace as;
                    try {
                        memory.zone().failPoints().failNth(site, n);
                        as = AddressSpace.create(memory, config);
                    } catch (VmException e) {
                        assertEquals(VmException.Code.ENOMEM, e.code());
                        injected++;
                        continue;
                    }
                    try {
                        workload(as);
                    } catch (FaultException e) {
                        assertEquals(FaultException.Kind.OOM, e.kind(), site + " #" + n);
                    }
                    long hit = memory.zone().failPoints().injected(site);
                    memory.zone().failPoints().disarmAll();
                    // Consistent afterwards: the mapping still works.
                    long c = as.mmap(0, PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
                    as.putLong(c, 77);
                    assertEquals(77, as.getLong(c));
                    as.close();
                    injected += (int) Math.min(1, hit);
                }
                memory.zone().failPoints().disarmAll();
                assertTrue(injected > 0, site + " was never reached by the workload");
                memory.zone().frames().drainCurrentThread();
                memory.zone().lockSlab().shrink();
                assertEquals(free, memory.freeFrameCount(), "frames leaked after failing " + site);
                assertEquals(0, memory.zone().lockSlab().liveLocks(), "debug locks leaked after failing " + site);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldReportOomWhenMemoryIsExhausted(VmConfig config) {
        try (PhysicalMemory memory = PhysicalMemory.create(2L << 20)) {
            long free = memory.freeFrameCount();
            try (AddressSpace as = AddressSpace.create(memory, config)) {
                long a = as.mmap(0, 4L << 20, Prot.READ | Prot.WRITE, MapFlags.NONE);
                FaultException e = assertThrows(FaultException.class, () -> {
                    for (long off = 0; off < (4L << 20); off += PAGE) {
                        as.putLong(a + off, off);
                    }
                });
                assertEquals(FaultException.Kind.OOM, e.kind());
                assertTrue(as.stats().faults("oom") >= 1);
                as.munmap(a, 4L << 20);
                long b = as.mmap(0, PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
                as.putLong(b, 1);
            }
            memory.zone().frames().drainCurrentThread();
            memory.zone().lockSlab().shrink();
            assertEquals(free, memory.freeFrameCount());
        }
    }

    @Test
    void shouldCatchATableFreedWithoutItsDestructor() {
        VmConfig config = VmConfig.builder().lockMode(LockMode.SPLIT_PTE_PMD).debugLocks(true).build();
        try (PhysicalMemory memory = PhysicalMemory.create(8L << 20);
             AddressSpace as = AddressSpace.create(memory, config)) {
            TableAlloc tables = as.services().tables();
            for (int level : new int[] {Entries.PTE, Entries.PMD}) {
                long locks = memory.zone().lockSlab().liveLocks();
                long pfn = tables.allocTable(level, as.services().mm().counters().local());
                assertTrue(pfn != FrameAllocator.NO_FRAME);
                assertEquals(locks + 1, memory.zone().lockSlab().liveLocks(), "the constructor allocated a debug lock");
                // The bug of pmd_free_tlb before the fix: a free path that skips the destructor.
                IllegalStateException e = assertThrows(IllegalStateException.class, () -> memory.zone().freeFrame(pfn));
                assertTrue(e.getMessage().contains("destructor"), e.getMessage());
                tables.freeTable(pfn, level);
                assertEquals(locks, memory.zone().lockSlab().liveLocks(), "the destructor freed the debug lock");
            }
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldFreeEveryTableLockOnEveryFreePath(VmConfig config) {
        try (PhysicalMemory memory = PhysicalMemory.create(16L << 20)) {
            try (AddressSpace as = AddressSpace.create(memory, config)) {
                long baseLocks = as.services().ptLocks().liveLocks();
                // gather path: munmap frees PTE, PMD and PUD tables through pte/pmd/pudFreeTlb
                for (int i = 0; i < 5; i++) {
                    long a = as.mmap(0x8000000000L * (i + 1), 4 << 20, Prot.READ | Prot.WRITE, MapFlags.FIXED);
                    as.putLong(a, 1);
                    as.putLong(a + (2 << 20), 1);
                    as.munmap(a, 4 << 20);
                    assertEquals(baseLocks, as.services().ptLocks().liveLocks(), "after munmap " + i);
                    assertEquals(0, as.stats().pageTableBytes());
                }
                // teardown path: close frees what is still mapped
                long a = as.mmap(0, 8 << 20, Prot.READ | Prot.WRITE, MapFlags.NONE);
                for (long off = 0; off < (8 << 20); off += 1 << 20) {
                    as.putLong(a + off, off);
                }
            }
            assertEquals(0, memory.zone().lockSlab().liveLocks());
        }
    }
}
