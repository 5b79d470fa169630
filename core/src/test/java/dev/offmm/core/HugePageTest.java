package dev.offmm.core;

import dev.offmm.core.pgtable.Entries;
import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.inject.FailSite;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * 2 MiB pages in every lock mode: THP policy and faults, fallback, hugetlb rules, split by partial
 * munmap / mprotect / DONTNEED, in-place changes of whole huge entries, pins, collapse, and no
 * leak at close (every frame back, deposited tables included).
 */
class HugePageTest {
    private static final long PAGE = 4096;
    private static final long MB = 1L << 20;
    private static final long HUGE = 2 * MB;
    private static final int RW = Prot.READ | Prot.WRITE;

    private PhysicalMemory memory;
    private long initialFree;

    private AddressSpace open(VmConfig config) {
        return open(config, Thp.MADVISE);
    }

    private AddressSpace open(VmConfig config, Thp thp) {
        memory = PhysicalMemory.create(64 * MB);
        initialFree = memory.freeFrameCount();
        VmConfig c = VmConfig.builder().lockMode(config.lockMode()).debugLocks(config.debugLocks()).thp(thp).build();
        return AddressSpace.create(memory, c);
    }

    @AfterEach
    void closeMemory() {
        TestSupport.closeAndCheckNoLeak(memory, initialFree);
    }

    static Stream<VmConfig> modes() {
        return Modes.all();
    }

    /** A 2 MiB-aligned THP-advised mapping of {@code n} huge pages. */
    private static long thpMapping(AddressSpace as, int n) {
        long a = as.mmap(0, n * HUGE, RW, MapFlags.NONE);
        assertEquals(0, a & (HUGE - 1), "mappings of 2 MiB or more are placed 2 MiB-aligned");
        as.madvise(a, n * HUGE, Advice.HUGEPAGE);
        return a;
    }

    private static void fill(AddressSpace as, long a, long bytes) {
        for (long p = 0; p < bytes; p += PAGE) {
            as.putLong(a + p, a + p);
        }
    }

    private static void checkFilled(AddressSpace as, long a, long bytes, long holeStart, long holeEnd) {
        for (long p = 0; p < bytes; p += PAGE) {
            long va = a + p;
            long expected = va >= holeStart && va < holeEnd ? 0 : va;
            assertEquals(expected, as.getLong(va), "page at 0x" + Long.toHexString(va));
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldMapOneHugePageOnAWriteFaultInAnAdvisedRange(VmConfig config) {
        try (AddressSpace as = open(config)) {
            long a = thpMapping(as, 2);
            as.putLong(a + 5 * PAGE, 42);
            VmStats s = as.stats();
            assertEquals(1, s.hugePages());
            assertEquals(1, s.faults("thp"));
            assertEquals(512, s.rssPages(), "a huge page counts 512 pages of RSS");
            assertEquals(PAGE, s.pteTableBytes(), "the deposited PTE table counts as a page table");
            fill(as, a, HUGE);
            assertEquals(1, as.stats().faults("thp"), "the other 511 pages need no fault");
            checkFilled(as, a, HUGE, 0, 0);
            assertTrue(as.ptdump().contains("2M  RW USR A D"), as.ptdump());
            assertTrue(as.ptdump().contains(" pmd"), as.ptdump());
            assertEquals(0, as.getLong(a + HUGE + 8), "a read of the untouched half maps the 4 KiB zero page");
            assertEquals(1, as.stats().hugePages());
            as.munmap(a, 2 * HUGE);
            assertEquals(0, as.stats().hugePages());
            assertEquals(0, as.stats().rssPages());
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldCoverAHugePageWithOneTlbEntry(VmConfig config) {
        try (AddressSpace as = open(config); Mmu mmu = as.attach()) {
            long a = thpMapping(as, 1);
            mmu.putLong(a, 1);
            long misses = mmu.tlbMisses();
            for (long p = 0; p < HUGE; p += PAGE) {
                mmu.putLong(a + p + 8, p);
            }
            assertTrue(mmu.tlbMisses() - misses <= 1, "512 pages, " + (mmu.tlbMisses() - misses) + " TLB misses");
            as.munmap(a + 100 * PAGE, PAGE);
            assertThrows(FaultException.class, () -> mmu.getLong(a + 100 * PAGE), "the split shot the 2 MiB entry down");
            assertEquals(101 * PAGE, mmu.getLong(a + 101 * PAGE + 8));
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldPopulateWithHugePagesAndNoSpuriousFaults(VmConfig config) {
        try (AddressSpace as = open(config, Thp.ALWAYS)) {
            long a = as.mmap(0, 4 * HUGE, RW, MapFlags.POPULATE);
            VmStats s = as.stats();
            assertEquals(4, s.hugePages());
            assertEquals(4, s.faults("thp"));
            assertEquals(0, s.faults("spurious"), "a populated huge page is not faulted 511 more times");
            assertEquals(0, as.getLong(a + 3 * HUGE + 8));
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldFollowThePolicy(VmConfig config) {
        try (AddressSpace as = open(config, Thp.ALWAYS)) {
            long a = as.mmap(0, 2 * HUGE, RW, MapFlags.NONE);
            as.putLong(a, 1);
            assertEquals(1, as.stats().hugePages(), "ALWAYS: any VMA");
            as.madvise(a + HUGE, HUGE, Advice.NOHUGEPAGE);
            as.putLong(a + HUGE, 1);
            assertEquals(1, as.stats().hugePages(), "NOHUGEPAGE wins over ALWAYS");
            long b = as.mmap(0x7000_0000_0000L + PAGE, HUGE, RW, MapFlags.FIXED);
            as.putLong(b + HUGE / 2, 1);
            assertEquals(1, as.stats().hugePages(), "the 2 MiB range must lie wholly inside the VMA");
            long c = as.mmap(0, HUGE + PAGE, RW, MapFlags.NONE);
            assertTrue((c & (HUGE - 1)) != 0, "a length that is no multiple of 2 MiB is placed at any page");
        }
    }

    @Test
    void shouldMapNoHugePageWithoutAdviceOrWithNever() {
        try (AddressSpace as = open(VmConfig.defaults())) {
            long a = as.mmap(0, HUGE, RW, MapFlags.NONE);
            as.putLong(a, 1);
            assertEquals(0, as.stats().hugePages(), "MADVISE without advice: 4 KiB");
        }
        closeMemory();
        try (AddressSpace as = open(VmConfig.defaults(), Thp.NEVER)) {
            long a = as.mmap(0, HUGE, RW, MapFlags.NONE);
            as.madvise(a, HUGE, Advice.HUGEPAGE);
            as.putLong(a, 1);
            assertEquals(0, as.stats().hugePages(), "NEVER: 4 KiB even where advised");
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldFallBackToSmallPagesWithoutAHugeFrame(VmConfig config) {
        try (AddressSpace as = open(config)) {
            long a = thpMapping(as, 1);
            memory.zone().failPoints().failAlways(FailSite.FRAME_HIGH_ORDER);
            fill(as, a, HUGE);
            memory.zone().failPoints().disarmAll();
            VmStats s = as.stats();
            assertEquals(0, s.hugePages());
            assertEquals(1, s.faults("thpFallback"), "the first fault fell back; then a PTE table is there");
            assertEquals(512, s.rssPages());
            checkFilled(as, a, HUGE, 0, 0);
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldSplitOnPartialMunmapMprotectAndDontneed(VmConfig config) {
        try (AddressSpace as = open(config)) {
            long a = thpMapping(as, 3);
            fill(as, a, 3 * HUGE);
            assertEquals(3, as.stats().hugePages());
            as.munmap(a + 7 * PAGE, PAGE);
            assertEquals(1, as.stats().thpSplits());
            assertEquals(3 * 512 - 1, as.stats().rssPages());
            assertThrows(FaultException.class, () -> as.getLong(a + 7 * PAGE));
            as.mprotect(a + HUGE, 16 * PAGE, Prot.READ);
            assertEquals(2, as.stats().thpSplits());
            assertThrows(FaultException.class, () -> as.putLong(a + HUGE, 1));
            as.putLong(a + HUGE + 16 * PAGE, a + HUGE + 16 * PAGE);
            as.madvise(a + 2 * HUGE + 100 * PAGE, 3 * PAGE, Advice.DONTNEED);
            assertEquals(3, as.stats().thpSplits());
            assertEquals(0, as.stats().hugePages());
            checkFilled(as, a + HUGE, 2 * HUGE, a + 2 * HUGE + 100 * PAGE, a + 2 * HUGE + 103 * PAGE);
            for (long p = 0; p < HUGE; p += PAGE) {
                if (p != 7 * PAGE) {
                    assertEquals(a + p, as.getLong(a + p));
                }
            }
            assertEquals(3 * 512 - 4, as.stats().rssPages());
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldChangeAWholeHugePageInPlace(VmConfig config) {
        try (AddressSpace as = open(config)) {
            long a = thpMapping(as, 2);
            fill(as, a, 2 * HUGE);
            as.mprotect(a, HUGE, Prot.READ);
            assertEquals(0, as.stats().thpSplits());
            assertEquals(2, as.stats().hugePages());
            assertThrows(FaultException.class, () -> as.putLong(a, 1));
            assertEquals(a + 8 * PAGE, as.getLong(a + 8 * PAGE));
            as.mprotect(a, HUGE, Prot.NONE);
            assertThrows(FaultException.class, () -> as.getLong(a));
            assertTrue(as.ptdump().contains("NONE"), as.ptdump());
            as.mprotect(a, HUGE, RW);
            as.putLong(a, 5);
            assertEquals(5, as.getLong(a));
            as.madvise(a + HUGE, HUGE, Advice.DONTNEED);
            assertEquals(0, as.stats().thpSplits());
            assertEquals(1, as.stats().hugePages());
            assertEquals(0, as.getLong(a + HUGE + 8 * PAGE), "DONTNEED of a whole huge page drops it");
            assertEquals(512, as.stats().rssPages());
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldKeepHugetlbPagesWhole(VmConfig config) {
        try (AddressSpace as = open(config)) {
            assertThrows(IllegalArgumentException.class, () -> as.mmap(0, HUGE + PAGE, RW, MapFlags.HUGETLB));
            assertThrows(IllegalArgumentException.class,
                    () -> as.mmap(0x4000_0000L + PAGE, HUGE, RW, MapFlags.HUGETLB | MapFlags.FIXED));
            long a = as.mmap(0, 2 * HUGE, RW, MapFlags.HUGETLB);
            assertEquals(0, a & (HUGE - 1));
            assertEquals(0, as.getLong(a + 3 * PAGE));
            assertEquals(1, as.stats().faults("hugetlb"), "a read fault maps a 2 MiB page too");
            assertEquals(512, as.stats().rssPages());
            assertEquals(0, as.stats().pteTableBytes(), "hugetlb deposits no table");
            fill(as, a, 2 * HUGE);
            assertThrows(IllegalArgumentException.class, () -> as.munmap(a + PAGE, PAGE));
            assertThrows(IllegalArgumentException.class, () -> as.mprotect(a, HUGE + PAGE, Prot.READ));
            assertThrows(IllegalArgumentException.class, () -> as.madvise(a + HUGE, PAGE, Advice.DONTNEED));
            assertThrows(IllegalArgumentException.class, () -> as.madvise(a, HUGE, Advice.COLLAPSE));
            checkFilled(as, a, 2 * HUGE, 0, 0);
            as.mprotect(a + HUGE, HUGE, Prot.READ);
            assertThrows(FaultException.class, () -> as.putLong(a + HUGE, 1));
            as.madvise(a, HUGE, Advice.DONTNEED);
            memory.zone().failPoints().failAlways(FailSite.FRAME_HIGH_ORDER);
            FaultException oom = assertThrows(FaultException.class, () -> as.getLong(a));
            assertEquals(FaultException.Kind.OOM, oom.kind(), "hugetlb never falls back");
            memory.zone().failPoints().disarmAll();
            assertEquals(0, as.getLong(a + 8));
            as.munmap(a, HUGE);
            assertEquals(512, as.stats().rssPages());
            assertEquals(0, as.stats().thpSplits());
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldPinTheRightSubpageAndKeepItAcrossSplitAndUnmap(VmConfig config) {
        try (AddressSpace as = open(config)) {
            long a = thpMapping(as, 1);
            fill(as, a, HUGE);
            PinnedPage pin = as.pin(a + 9 * PAGE + 100, true);
            assertEquals(a + 9 * PAGE, pin.segment().get(java.lang.foreign.ValueLayout.JAVA_LONG, 0));
            pin.segment().set(java.lang.foreign.ValueLayout.JAVA_LONG, 8, 77);
            assertEquals(77, as.getLong(a + 9 * PAGE + 8));
            as.munmap(a + 3 * PAGE, PAGE);
            assertEquals(1, as.stats().thpSplits());
            pin.segment().set(java.lang.foreign.ValueLayout.JAVA_LONG, 16, 78);
            assertEquals(78, as.getLong(a + 9 * PAGE + 16), "the pin still is the mapped page after the split");
            PinnedPage pin2 = as.pin(a + 11 * PAGE, false);
            as.munmap(a, HUGE);
            as.services().reclaimer().awaitQuiescent(1_000_000_000L);
            assertEquals(78, pin.segment().get(java.lang.foreign.ValueLayout.JAVA_LONG, 16), "the frame outlives its mapping");
            assertEquals(a + 11 * PAGE, pin2.segment().get(java.lang.foreign.ValueLayout.JAVA_LONG, 0));
            pin.close();
            pin2.close();
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldFreeAPinnedHugePageUnmappedWhole(VmConfig config) {
        try (AddressSpace as = open(config)) {
            long a = thpMapping(as, 1);
            fill(as, a, HUGE);
            PinnedPage pin = as.pin(a + 400 * PAGE, true);
            as.munmap(a, HUGE);
            as.services().reclaimer().awaitQuiescent(1_000_000_000L);
            assertEquals(a + 400 * PAGE, pin.segment().get(java.lang.foreign.ValueLayout.JAVA_LONG, 0));
            pin.close();
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldCollapseSmallPagesIntoAHugePage(VmConfig config) {
        try (AddressSpace as = open(config, Thp.NEVER)) {
            long a = as.mmap(0, 2 * HUGE, RW, MapFlags.NONE);
            for (long p = 0; p < HUGE; p += 3 * PAGE) {
                as.putLong(a + p + 16, a + p);
            }
            as.getLong(a + PAGE);
            long rss = as.stats().rssPages();
            as.madvise(a, 2 * HUGE, Advice.COLLAPSE);
            VmStats s = as.stats();
            assertEquals(1, s.thpCollapses(), "the second half has no table: nothing to collapse");
            assertEquals(1, s.hugePages());
            assertEquals(512, s.rssPages(), "was " + rss);
            for (long p = 0; p < HUGE; p += PAGE) {
                assertEquals(p % (3 * PAGE) == 0 ? a + p : 0, as.getLong(a + p + 16), "page " + p / PAGE);
            }
            assertTrue(as.ptdump().contains(" pmd"), as.ptdump());
            as.putLong(a + PAGE, 9);
            assertEquals(9, as.getLong(a + PAGE));
            as.munmap(a + 5 * PAGE, PAGE);
            assertEquals(1, as.stats().thpSplits(), "a collapsed page deposits its table for a later split");
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldRefuseToCollapseWhatIsPinnedOrForbidden(VmConfig config) {
        try (AddressSpace as = open(config, Thp.NEVER)) {
            long a = as.mmap(0, HUGE, RW, MapFlags.NONE);
            fill(as, a, HUGE);
            try (PinnedPage pin = as.pin(a + 5 * PAGE, false)) {
                VmException e = assertThrows(VmException.class, () -> as.madvise(a, HUGE, Advice.COLLAPSE));
                assertEquals(VmException.Code.EAGAIN, e.code());
                assertEquals(a + 5 * PAGE, pin.segment().get(java.lang.foreign.ValueLayout.JAVA_LONG, 0));
            }
            checkFilled(as, a, HUGE, 0, 0);
            as.madvise(a, HUGE, Advice.NOHUGEPAGE);
            assertThrows(IllegalArgumentException.class, () -> as.madvise(a, HUGE, Advice.COLLAPSE));
            as.madvise(a, HUGE, Advice.HUGEPAGE);
            memory.zone().failPoints().failAlways(FailSite.FRAME_HIGH_ORDER);
            VmException e = assertThrows(VmException.class, () -> as.madvise(a, HUGE, Advice.COLLAPSE));
            assertEquals(VmException.Code.ENOMEM, e.code());
            memory.zone().failPoints().disarmAll();
            checkFilled(as, a, HUGE, 0, 0);
            as.madvise(a, HUGE, Advice.COLLAPSE);
            checkFilled(as, a, HUGE, 0, 0);
            assertEquals(1, as.stats().hugePages());
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldNeverChangeAHugeEntryWithoutTheLockHugePteLockNames(VmConfig config) {
        try (AddressSpace as = open(config)) {
            long a = as.mmap(0, 2 * HUGE, RW, MapFlags.HUGETLB);
            as.putLong(a, 1);
            long pmdE = as.services().entries().lookupPmd(as.services().mm().pgd(), a);
            // Broken variant: the store without any lock is caught, whatever the mode.
            assertThrows(IllegalStateException.class, () -> as.services().huge().set(pmdE, 0));
            if (config.debugLocks() && config.effectiveLockMode() == LockMode.SPLIT_PTE_PMD) {
                // The 2024 bug: the right entry under another lock (page_table_lock instead of the PMD lock).
                long other = as.services().ptl().pageTableLock();
                try {
                    assertThrows(IllegalStateException.class, () -> as.services().huge().set(pmdE, 0));
                } finally {
                    as.services().ptl().unlock(other);
                }
            }
            assertEquals(1, as.getLong(a), "nothing was changed by the refused stores");
            assertTrue(Entries.PMD_SIZE == HUGE);
        }
    }
}
