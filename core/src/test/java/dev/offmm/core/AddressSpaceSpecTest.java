package dev.offmm.core;

import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.LockClass;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The man-page semantics of mmap / munmap / mprotect / madvise and faults, in every lock mode. */
class AddressSpaceSpecTest {
    private static final long PAGE = 4096;
    private static final long MB = 1L << 20;

    private PhysicalMemory memory;
    private long initialFree;

    private AddressSpace open(VmConfig config) {
        memory = PhysicalMemory.create(64 * MB);
        initialFree = memory.freeFrameCount();
        return AddressSpace.create(memory, config);
    }

    @AfterEach
    void closeMemory() {
        TestSupport.closeAndCheckNoLeak(memory, initialFree);
    }

    static java.util.stream.Stream<VmConfig> modes() {
        return Modes.all();
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldMapZeroPageOnReadAndFreshPageOnWrite(VmConfig config) {
        try (AddressSpace as = open(config)) {
            long a = as.mmap(0, 8 * PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
            assertEquals(0, as.getLong(a + 8));
            assertEquals(0, as.stats().rssPages(), "a read maps the zero page, not a frame");
            assertEquals(1, as.stats().faults("zero"));
            as.putLong(a + 8, 42);
            assertEquals(42, as.getLong(a + 8));
            assertEquals(1, as.stats().rssPages());
            assertEquals(1, as.stats().faults("cow"), "a write to a zero-page mapping copies");
            as.putLong(a + PAGE, 7);
            assertEquals(1, as.stats().faults("anon"));
            assertEquals(2, as.stats().rssPages());
            assertEquals(0, as.getLong(a + 2 * PAGE));
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldUseTheConfiguredLocks(VmConfig config) {
        try (AddressSpace as = open(config)) {
            long a = as.mmap(0, 4 * PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
            for (long p = 0; p < 4; p++) {
                as.putLong(a + p * PAGE, p);
            }
            VmStats s = as.stats();
            LockMode mode = config.effectiveLockMode();
            if (!config.debugLocks()) {
                // Like CONFIG_LOCK_STAT, acquisitions are counted with debug locks only: the inline
                // lock path counts nothing but contention. The debug variant of each mode checks
                // which locks the helpers chose; they choose the same way in both.
                for (LockClass k : LockClass.values()) {
                    assertEquals(0, s.lockAcquisitions().get(k), k + " acquisitions counted on the inline path");
                }
            } else {
                assertEquals(mode == LockMode.SINGLE, s.lockAcquisitions().get(LockClass.PTE) == 0);
                assertEquals(mode != LockMode.SPLIT_PTE_PMD, s.lockAcquisitions().get(LockClass.PMD) == 0);
                assertTrue(s.lockAcquisitions().get(LockClass.PAGE_TABLE_LOCK) > 0, "PUD/PMD tables populate under it");
            }
            assertEquals(PAGE, s.pteTableBytes());
            assertEquals(PAGE, s.pmdTableBytes());
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldRejectInvalidMmapArguments(VmConfig config) {
        try (AddressSpace as = open(config)) {
            int rw = Prot.READ | Prot.WRITE;
            assertThrows(IllegalArgumentException.class, () -> as.mmap(0, 0, rw, 0));
            assertThrows(IllegalArgumentException.class, () -> as.mmap(0, -1, rw, 0));
            assertThrows(IllegalArgumentException.class, () -> as.mmap(0, PAGE, 8, 0));
            assertThrows(IllegalArgumentException.class, () -> as.mmap(0, PAGE, rw, 1 << 20));
            assertThrows(IllegalArgumentException.class, () -> as.mmap(0x10001000L + 1, PAGE, rw, MapFlags.FIXED));
            assertEquals(VmException.Code.ENOMEM,
                    assertThrows(VmException.class, () -> as.mmap(0, Long.MAX_VALUE, rw, 0)).code());
            assertEquals(VmException.Code.ENOMEM, assertThrows(VmException.class,
                    () -> as.mmap(AddressSpace.USER_END - PAGE, 2 * PAGE, rw, MapFlags.FIXED)).code());
            assertEquals(VmException.Code.EPERM,
                    assertThrows(VmException.class, () -> as.mmap(PAGE, PAGE, rw, MapFlags.FIXED)).code());
            assertEquals(0, as.stats().vmaCount(), "no error leaves a mapping behind");
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldHonourHintsFixedAndNoReplace(VmConfig config) {
        try (AddressSpace as = open(config)) {
            int rw = Prot.READ | Prot.WRITE;
            long hint = 0x40000000L;
            assertEquals(hint, as.mmap(hint, 3 * PAGE + 1, rw, 0), "a free hint is honoured");
            long b = as.mmap(hint, PAGE, rw, 0);
            assertTrue(b != hint, "a taken hint is not");
            assertTrue(b > hint, "the search is top-down");
            as.putLong(hint, 5);
            VmException e = assertThrows(VmException.class, () -> as.mmap(hint + PAGE, PAGE, rw, MapFlags.FIXED_NOREPLACE));
            assertEquals(VmException.Code.EEXIST, e.code());
            assertEquals(5, as.getLong(hint), "EEXIST changed nothing");
            assertEquals(hint, as.mmap(hint, PAGE, Prot.READ, MapFlags.FIXED), "FIXED replaces");
            assertEquals(0, as.getLong(hint), "the old page is gone");
            assertEquals(3, as.stats().vmaCount(), "[hint] ro, [hint+1, hint+4) rw, b");
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldSplitOnPartialMunmapAndFaultMapErrAfter(VmConfig config) {
        try (AddressSpace as = open(config)) {
            long a = as.mmap(0, 16 * PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
            for (int p = 0; p < 16; p++) {
                as.putLong(a + p * PAGE, p + 1);
            }
            as.munmap(a + 4 * PAGE, 4 * PAGE);
            assertEquals(2, as.stats().vmaCount());
            assertEquals(12, as.stats().rssPages());
            FaultException f = assertThrows(FaultException.class, () -> as.getLong(a + 5 * PAGE));
            assertEquals(FaultException.Kind.MAPERR, f.kind());
            assertEquals(a + 5 * PAGE, f.address());
            assertEquals(4, as.getLong(a + 3 * PAGE));
            assertEquals(9, as.getLong(a + 8 * PAGE));
            as.munmap(a + 4 * PAGE, 4 * PAGE);
            as.munmap(0x200000000L, PAGE);
            assertThrows(IllegalArgumentException.class, () -> as.munmap(a + 1, PAGE));
            assertThrows(IllegalArgumentException.class, () -> as.munmap(a, 0));
            assertThrows(IllegalArgumentException.class, () -> as.munmap(AddressSpace.USER_END - PAGE, 2 * PAGE));
            as.munmap(a, 16 * PAGE);
            assertEquals(0, as.stats().rssPages());
            assertEquals(0, as.stats().pageTableBytes(), "empty tables are freed once no VMA is left");
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldMergeAdjacentCompatibleMappings(VmConfig config) {
        try (AddressSpace as = open(config)) {
            long base = 0x50000000L;
            int rw = Prot.READ | Prot.WRITE;
            as.mmap(base, PAGE, rw, MapFlags.FIXED);
            as.mmap(base + PAGE, PAGE, rw, MapFlags.FIXED);
            assertEquals(1, as.stats().vmaCount());
            as.mprotect(base, PAGE, Prot.READ);
            assertEquals(2, as.stats().vmaCount());
            as.mprotect(base, PAGE, rw);
            assertEquals(1, as.stats().vmaCount(), "mprotect back merges");
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldEnforceProtectionAndKeepDataAcrossMprotect(VmConfig config) {
        try (AddressSpace as = open(config)) {
            long a = as.mmap(0, 4 * PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
            as.putLong(a, 99);
            as.getLong(a + PAGE);
            as.mprotect(a, 2 * PAGE, Prot.READ);
            assertEquals(FaultException.Kind.ACCERR, assertThrows(FaultException.class, () -> as.putLong(a, 1)).kind());
            assertEquals(FaultException.Kind.ACCERR, assertThrows(FaultException.class, () -> as.putLong(a + PAGE, 1)).kind());
            assertEquals(99, as.getLong(a));
            as.mprotect(a, PAGE, Prot.NONE);
            assertEquals(FaultException.Kind.ACCERR, assertThrows(FaultException.class, () -> as.getLong(a)).kind());
            assertTrue(as.ptdump().contains("NONE"), as.ptdump());
            as.mprotect(a, 4 * PAGE, Prot.READ | Prot.WRITE);
            assertEquals(99, as.getLong(a), "PROT_NONE kept the frame");
            as.putLong(a, 100);
            assertEquals(100, as.getLong(a));
            as.putLong(a + PAGE, 3);
            assertEquals(3, as.getLong(a + PAGE));
            assertEquals(1, as.stats().vmaCount());
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldFailMprotectOverAHoleWithoutChangingAnything(VmConfig config) {
        try (AddressSpace as = open(config)) {
            long a = as.mmap(0, 4 * PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
            as.munmap(a + 2 * PAGE, PAGE);
            as.putLong(a, 1);
            VmException e = assertThrows(VmException.class, () -> as.mprotect(a, 4 * PAGE, Prot.READ));
            assertEquals(VmException.Code.ENOMEM, e.code());
            as.putLong(a, 2);
            assertEquals(2, as.getLong(a), "still writable");
            assertEquals(2, as.stats().vmaCount());
            assertThrows(IllegalArgumentException.class, () -> as.mprotect(a + 1, PAGE, Prot.READ));
            assertThrows(IllegalArgumentException.class, () -> as.mprotect(a, PAGE, 4));
            as.mprotect(a, 0, Prot.READ);
            as.putLong(a, 3);
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldReadZerosAfterDontneed(VmConfig config) {
        try (AddressSpace as = open(config)) {
            long a = as.mmap(0, 4 * PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
            for (int p = 0; p < 4; p++) {
                as.putLong(a + p * PAGE, 11);
            }
            long tables = as.stats().pageTableBytes();
            as.madvise(a + PAGE, 2 * PAGE, Advice.DONTNEED);
            assertEquals(11, as.getLong(a));
            assertEquals(0, as.getLong(a + PAGE));
            assertEquals(0, as.getLong(a + 2 * PAGE));
            assertEquals(11, as.getLong(a + 3 * PAGE));
            assertEquals(2, as.stats().rssPages());
            assertEquals(tables, as.stats().pageTableBytes(), "DONTNEED keeps tables");
            assertThrows(IllegalArgumentException.class, () -> as.madvise(a, PAGE, 99));
            assertThrows(IllegalArgumentException.class, () -> as.madvise(a + 3, PAGE, Advice.DONTNEED));
            as.munmap(a + PAGE, PAGE);
            assertEquals(VmException.Code.ENOMEM,
                    assertThrows(VmException.class, () -> as.madvise(a, 4 * PAGE, Advice.DONTNEED)).code());
            assertEquals(11, as.getLong(a), "the failed madvise dropped nothing");
            as.madvise(a + 2 * PAGE, 2 * PAGE, Advice.HUGEPAGE);
            assertTrue(as.mappings().get(1).contains("hugepage"), as.mappings().toString());
            as.madvise(a, PAGE, Advice.WILLNEED);
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldPopulateEveryPage(VmConfig config) {
        try (AddressSpace as = open(config)) {
            as.mmap(0, 64 * PAGE, Prot.READ | Prot.WRITE, MapFlags.POPULATE);
            assertEquals(64, as.stats().rssPages());
            as.mmap(0, 64 * PAGE, Prot.READ, MapFlags.POPULATE);
            assertEquals(64, as.stats().rssPages(), "read-only populate maps the zero page");
            assertEquals(64, as.stats().faults("zero"));
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldCrossPageBoundariesInBulkAccess(VmConfig config) {
        try (AddressSpace as = open(config)) {
            long a = as.mmap(0, 3 * PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
            byte[] src = new byte[(int) (2 * PAGE)];
            for (int i = 0; i < src.length; i++) {
                src[i] = (byte) (i * 31);
            }
            as.write(a + 100, src, 0, src.length);
            byte[] dst = new byte[src.length];
            as.read(a + 100, dst, 0, dst.length);
            assertTrue(java.util.Arrays.equals(src, dst));
            as.putLong(a + PAGE - 3, 0x1122334455667788L);
            assertEquals(0x1122334455667788L, as.getLong(a + PAGE - 3));
            assertEquals(FaultException.Kind.MAPERR,
                    assertThrows(FaultException.class, () -> as.read(a + 2 * PAGE, dst, 0, dst.length)).kind());
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldFailEveryCallAfterClose(VmConfig config) {
        AddressSpace as = open(config);
        long a = as.mmap(0, PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
        as.putLong(a, 1);
        as.close();
        as.close();
        assertThrows(IllegalStateException.class, () -> as.getLong(a));
        assertThrows(IllegalStateException.class, () -> as.mmap(0, PAGE, Prot.READ, 0));
        assertThrows(IllegalStateException.class, () -> as.fault(a, false));
        assertThrows(IllegalStateException.class, as::ptdump);
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldDumpMappedRanges(VmConfig config) {
        try (AddressSpace as = open(config)) {
            long a = as.mmap(0x60000000L, 8 * PAGE, Prot.READ | Prot.WRITE, MapFlags.FIXED);
            for (int p = 0; p < 4; p++) {
                as.putLong(a + p * PAGE, 1);
            }
            as.getLong(a + 4 * PAGE);
            String dump = as.ptdump();
            assertTrue(dump.contains("0x0000000060000000-0x0000000060004000       16K  RW USR A D"), dump);
            assertTrue(dump.contains("ZERO"), dump);
        }
    }
}
