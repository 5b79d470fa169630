package dev.offmm.core;

import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.inject.FailPoints;
import dev.offmm.offheap.inject.FailSite;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link AddressSpace#fork()} in every lock mode, with table sharing on and off: the child reads
 * the parent's memory as it was, writes in either never show in the other, munmap / mprotect /
 * DONTNEED / close in either leave the other alone, the last mapping of a page reuses it, pins
 * keep seeing their space's page, and every frame and lock comes back whatever the close order.
 */
class ForkTest {
    private static final long PAGE = 4096;
    private static final long MB = 1L << 20;
    private static final long HUGE = 2 * MB;
    private static final int RW = Prot.READ | Prot.WRITE;

    private PhysicalMemory memory;
    private long initialFree;

    @AfterEach
    void closeMemory() {
        TestSupport.closeAndCheckNoLeak(memory, initialFree);
    }

    static Stream<VmConfig> modes() {
        return Modes.all().flatMap(c -> Stream.of(true, false).map(share -> VmConfig.builder()
                .lockMode(c.lockMode()).debugLocks(c.debugLocks()).sharePageTables(share).build()));
    }

    private AddressSpace open(VmConfig config) {
        memory = PhysicalMemory.create(64 * MB);
        initialFree = memory.freeFrameCount();
        return AddressSpace.create(memory, config);
    }

    private static boolean shares(VmConfig c) {
        return c.sharePageTables() && c.effectiveLockMode() != LockMode.SINGLE;
    }

    /** 2 MiB-aligned, 3 MiB long: one table wholly inside, one cut by the end. */
    private static long mapAndFill(AddressSpace as, long tag) {
        long b = as.mmap(0, 4 * MB, RW, MapFlags.NONE);
        assertEquals(0, b & (HUGE - 1), "mappings of 2 MiB multiples are placed 2 MiB-aligned");
        as.munmap(b + 3 * MB, MB);
        for (long p = 0; p < 3 * MB; p += PAGE) {
            as.putLong(b + p, tag + p);
        }
        return b;
    }

    private static void check(AddressSpace as, long b, long tag, String who) {
        for (long p = 0; p < 3 * MB; p += PAGE) {
            assertEquals(tag + p, as.getLong(b + p), who + " at +" + p);
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldSnapshotAndKeepEachSpacesWritesToItself(VmConfig config) {
        try (AddressSpace parent = open(config)) {
            long b = mapAndFill(parent, 1000);
            long rssBefore = parent.stats().rssPages();
            try (AddressSpace child = parent.fork()) {
                assertEquals(parent.mappings(), child.mappings(), "the same VMAs");
                check(child, b, 1000, "child after fork");
                assertEquals(rssBefore, child.stats().rssPages(), "the child maps every page the parent does");
                if (shares(config)) {
                    assertEquals(1, parent.stats().sharedTables(), "the table wholly inside the VMA is shared");
                    assertEquals(1, child.stats().sharedTables());
                } else {
                    assertEquals(0, child.stats().sharedTables());
                }
                for (long p = 0; p < 3 * MB; p += PAGE) {
                    parent.putLong(b + p, 2000 + p);
                }
                check(child, b, 1000, "child after the parent wrote");
                check(parent, b, 2000, "parent");
                for (long p = 0; p < 3 * MB; p += 2 * PAGE) {
                    child.putLong(b + p + 8, -1);
                }
                check(parent, b, 2000, "parent after the child wrote");
                assertEquals(-1, child.getLong(b + 8));
                assertEquals(1000 + PAGE, child.getLong(b + PAGE));
                long copies = parent.stats().faults("cowCopy") + child.stats().faults("cowCopy");
                long reuses = parent.stats().faults("reuse") + child.stats().faults("reuse");
                assertEquals(3 * MB / PAGE + 3 * MB / PAGE / 2, copies + reuses, "every first write copies or reuses");
                if (shares(config)) {
                    assertEquals(1, parent.stats().unshares().get("copied") + child.stats().unshares().get("copied"),
                            "the first space to change the shared table copies it");
                    assertEquals(1, parent.stats().unshares().get("kept") + child.stats().unshares().get("kept"),
                            "the other one was then its last user and kept it");
                }
                assertEquals(1, parent.stats().forks());
            }
            check(parent, b, 2000, "parent after the child closed");
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldReuseAPageWhoseOtherMappingIsGone(VmConfig config) {
        try (AddressSpace parent = open(config)) {
            long b = mapAndFill(parent, 7);
            AddressSpace child = parent.fork();
            child.close();
            parent.putLong(b, 99);
            parent.putLong(b + 2 * MB, 98);
            assertEquals(0, parent.stats().faults("cowCopy"), "the child's mappings are gone: nothing to copy");
            assertEquals(99, parent.getLong(b));
            assertEquals(7 + PAGE, parent.getLong(b + PAGE));
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldKeepZeroPagesAndUnmappedHolesAsTheyAre(VmConfig config) {
        try (AddressSpace parent = open(config)) {
            long a = parent.mmap(0, 4 * MB, RW, MapFlags.NONE);
            long b = (a + HUGE - 1) & -HUGE;
            assertEquals(0, parent.getLong(b + 5 * PAGE), "a read maps the zero page");
            parent.putLong(b, 1);
            try (AddressSpace child = parent.fork()) {
                assertEquals(0, child.getLong(b + 5 * PAGE));
                assertEquals(0, child.getLong(b + 6 * PAGE), "never touched");
                child.putLong(b + 5 * PAGE, 5);
                assertEquals(0, parent.getLong(b + 5 * PAGE), "the child's copy of the zero page is its own");
                assertEquals(5, child.getLong(b + 5 * PAGE));
                parent.putLong(b + 6 * PAGE, 6);
                assertEquals(0, child.getLong(b + 6 * PAGE));
            }
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldLeaveTheOtherSpaceAloneOnMunmapMprotectAndDontneed(VmConfig config) {
        try (AddressSpace parent = open(config)) {
            long b = mapAndFill(parent, 3);
            try (AddressSpace child = parent.fork()) {
                child.munmap(b, HUGE);
                check(parent, b, 3, "parent after the child's munmap of the shared table");
                child.madvise(b + HUGE, 512 * 1024, Advice.DONTNEED);
                check(parent, b, 3, "parent after the child's DONTNEED");
                assertEquals(0, child.getLong(b + HUGE));
                parent.mprotect(b + HUGE, MB, Prot.READ);
                assertEquals(3 + HUGE + 150 * PAGE, child.getLong(b + HUGE + 150 * PAGE),
                        "the parent's mprotect leaves the child alone");
                child.putLong(b + HUGE + MB - PAGE, 77);
                assertThrows(FaultException.class, () -> parent.putLong(b + HUGE + MB - PAGE, 1));
                parent.mprotect(b + HUGE, MB, RW);
                parent.putLong(b + HUGE + MB - 2 * PAGE, 55);
                assertEquals(3 + HUGE + MB - 2 * PAGE, child.getLong(b + HUGE + MB - 2 * PAGE),
                        "mprotect back to RW must not make a page shared copy-on-write writable in place");
                assertEquals(77, child.getLong(b + HUGE + MB - PAGE));
                assertEquals(3 + HUGE + MB - PAGE, parent.getLong(b + HUGE + MB - PAGE));
            }
            parent.putLong(b + HUGE + MB - 2 * PAGE, 3 + HUGE + MB - 2 * PAGE);
            check(parent, b, 3, "parent after the child closed");
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldReturnEveryFrameWhateverTheCloseOrder(VmConfig config) {
        for (int order = 0; order < 3; order++) {
            try (AddressSpace parent = open(config)) {
                long b = mapAndFill(parent, order);
                AddressSpace child = parent.fork();
                AddressSpace grandchild = child.fork();
                List<AddressSpace> spaces = new ArrayList<>(List.of(parent, child, grandchild));
                // Rotate who closes first; the others keep reading their snapshot meanwhile.
                for (int i = 0; i < 3; i++) {
                    AddressSpace s = spaces.get((order + i) % 3);
                    s.close();
                    for (AddressSpace o : spaces) {
                        if (!o.isClosed()) {
                            check(o, b, order, "a survivor");
                        }
                    }
                }
            }
            TestSupport.closeAndCheckNoLeak(memory, initialFree);
            memory = null;
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldShareOneTableAmongThreeSpacesAndCopyItOncePerChange(VmConfig config) {
        try (AddressSpace parent = open(config)) {
            long b = mapAndFill(parent, 11);
            try (AddressSpace c1 = parent.fork(); AddressSpace c2 = parent.fork()) {
                if (shares(config)) {
                    assertEquals(1, c1.stats().sharedTables());
                    assertEquals(1, c2.stats().sharedTables());
                }
                c1.putLong(b + PAGE, -1);
                c2.putLong(b + PAGE, -2);
                parent.putLong(b + PAGE, -3);
                assertEquals(-1, c1.getLong(b + PAGE));
                assertEquals(-2, c2.getLong(b + PAGE));
                assertEquals(-3, parent.getLong(b + PAGE));
                assertEquals(11 + 2 * PAGE, c2.getLong(b + 2 * PAGE));
                if (shares(config)) {
                    long copied = c1.stats().unshares().get("copied") + c2.stats().unshares().get("copied")
                            + parent.stats().unshares().get("copied");
                    assertEquals(2, copied, "two of three copy the table, the last keeps it");
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldCopyAPinnedPageForTheChildSoThePinSeesTheParentsWrites(VmConfig config) {
        try (AddressSpace parent = open(config)) {
            long b = mapAndFill(parent, 5);
            try (PinnedPage pin = parent.pin(b + PAGE, false); AddressSpace child = parent.fork()) {
                assertEquals(1, parent.stats().forkPinnedCopies());
                parent.putLong(b + PAGE, 123);
                assertEquals(123, pin.segment().get(ValueLayout.JAVA_LONG_UNALIGNED, 0), "the pin sees the parent's write");
                assertEquals(5 + PAGE, child.getLong(b + PAGE), "the child has its own copy");
                child.putLong(b + PAGE, 321);
                assertEquals(123, pin.segment().get(ValueLayout.JAVA_LONG_UNALIGNED, 0));
                assertEquals(0, parent.stats().faults("cowCopy"), "the pinned page stayed the parent's alone");
            }
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldUnshareAPageBeforePinningItAfterAFork(VmConfig config) {
        try (AddressSpace parent = open(config)) {
            long b = mapAndFill(parent, 9);
            try (AddressSpace child = parent.fork(); PinnedPage pin = child.pin(b, false)) {
                child.putLong(b, 1234);
                assertEquals(1234, pin.segment().get(ValueLayout.JAVA_LONG_UNALIGNED, 0),
                        "a read pin made the page the child's alone: its write goes to the pinned page");
                assertEquals(9, parent.getLong(b));
                parent.putLong(b, 4321);
                assertEquals(1234, pin.segment().get(ValueLayout.JAVA_LONG_UNALIGNED, 0));
            }
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldSplitTransparentHugePagesAndCopyHugetlbPages(VmConfig config) {
        try (AddressSpace parent = open(config)) {
            long a = parent.mmap(0, 2 * HUGE, RW, MapFlags.NONE);
            parent.madvise(a, 2 * HUGE, Advice.HUGEPAGE);
            parent.putLong(a + 8, 1);
            long h = parent.mmap(a - 4 * HUGE, HUGE, RW, MapFlags.FIXED | MapFlags.HUGETLB);
            parent.putLong(h + 16, 2);
            int hugeBefore = (int) parent.stats().hugePages();
            try (AddressSpace child = parent.fork()) {
                assertEquals(1, child.stats().hugePages(), "the hugetlb page is copied, the THP split");
                assertEquals(hugeBefore - 1, parent.stats().hugePages());
                assertEquals(1, child.getLong(a + 8));
                assertEquals(2, child.getLong(h + 16));
                child.putLong(h + 16, 3);
                child.putLong(a + 8, 4);
                assertEquals(2, parent.getLong(h + 16));
                assertEquals(1, parent.getLong(a + 8));
            }
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldFailAForkWithoutMemoryAndLeaveNothingOfTheChild(VmConfig config) {
        memory = PhysicalMemory.create(8 * MB);
        initialFree = memory.freeFrameCount();
        // Sharing would need no page: copy tables so that the child needs frames.
        VmConfig c = VmConfig.builder().lockMode(config.lockMode()).debugLocks(config.debugLocks())
                .sharePageTables(false).build();
        try (AddressSpace parent = AddressSpace.create(memory, c)) {
            long a = parent.mmap(0, 7 * MB, RW, MapFlags.NONE);
            long n = 0;
            try {
                for (long p = 0; p < 7 * MB; p += PAGE, n++) {
                    parent.putLong(a + p, p);
                }
            } catch (FaultException e) {
                assertEquals(FaultException.Kind.OOM, e.kind());
            }
            long last = n;
            // The pinned pages need copies the memory cannot give.
            List<PinnedPage> pins = new ArrayList<>();
            for (long p = 0; p < last * PAGE; p += PAGE) {
                pins.add(parent.pin(a + p, false));
            }
            long used = memory.usedFrameCount();
            VmException e = assertThrows(VmException.class, parent::fork);
            assertEquals(VmException.Code.ENOMEM, e.code());
            pins.forEach(PinnedPage::close);
            memory.zone().frames().drainAllCaches();
            assertTrue(memory.usedFrameCount() <= used,
                    "nothing of the child is left: " + memory.usedFrameCount() + " > " + used);
            assertNotEquals(0, last);
            assertEquals(PAGE, parent.getLong(a + PAGE));
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldKeepOrDropASharedTableWithoutMemoryAndFailACopyBeforeDroppingAnything(VmConfig config) {
        try (AddressSpace parent = open(config)) {
            long b = parent.mmap(0, 4 * MB, RW, MapFlags.NONE);
            for (long p = 0; p < 4 * MB; p += PAGE) {
                parent.putLong(b + p, 21 + p);
            }
            FailPoints fp = memory.zone().failPoints();
            try (AddressSpace child = parent.fork()) {
                fp.failAlways(FailSite.PAGE_TABLE);
                try {
                    if (shares(config)) {
                        // Both tables are shared: the range drops the first and cuts the second,
                        // whose copy finds no frame, so the munmap fails and nothing is dropped.
                        VmException e = assertThrows(VmException.class, () -> child.munmap(b, 3 * MB));
                        assertEquals(VmException.Code.ENOMEM, e.code());
                        VmException d = assertThrows(VmException.class,
                                () -> child.madvise(b + HUGE, PAGE, Advice.DONTNEED));
                        assertEquals(VmException.Code.ENOMEM, d.code(), "DONTNEED reports its own error");
                        for (long p = 0; p < 4 * MB; p += PAGE) {
                            assertEquals(21 + p, child.getLong(b + p), "child after the failed munmap at +" + p);
                        }
                    }
                    child.munmap(b, HUGE);
                } finally {
                    fp.disarmAll();
                }
            }
            fp.failAlways(FailSite.PAGE_TABLE);
            try {
                // Every sharer is gone: the parent keeps its tables as they are, no frame needed.
                for (long p = 0; p < 4 * MB; p += PAGE) {
                    parent.putLong(b + p, 5 + p);
                }
            } finally {
                fp.disarmAll();
            }
            for (long p = 0; p < 4 * MB; p += PAGE) {
                assertEquals(5 + p, parent.getLong(b + p));
            }
        }
    }
}
