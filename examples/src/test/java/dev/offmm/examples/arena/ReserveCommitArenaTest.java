package dev.offmm.examples.arena;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.FaultException;
import dev.offmm.core.Mmu;
import dev.offmm.core.VmConfig;
import dev.offmm.offheap.PhysicalMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Allocation, guard pages, reset and close of the reserve-and-commit arena. */
class ReserveCommitArenaTest {
    private static final long PAGE = AddressSpace.PAGE_SIZE;

    private PhysicalMemory memory;
    private AddressSpace as;
    private Mmu mmu;

    @BeforeEach
    void setUp() {
        memory = PhysicalMemory.create(64L << 20);
        as = AddressSpace.create(memory, VmConfig.defaults());
        mmu = as.attach();
    }

    @AfterEach
    void tearDown() {
        mmu.close();
        // Throws if a page, a table or a frame of the space leaked.
        as.close();
        memory.close();
    }

    @Test
    void shouldAlignEveryBlockAndKeepBlocksDisjoint() {
        try (ReserveCommitArena arena = new ReserveCommitArena(as, 64L << 20, 1L << 20)) {
            long prevEnd = arena.base();
            long[] aligns = {1, 8, 64, 4096, 1L << 16, 1L << 21};
            long[] sizes = {1, 7, 100, 4095, 4097, 70_000};
            for (long align : aligns) {
                for (long size : sizes) {
                    long a = arena.allocate(size, align);
                    assertEquals(0, a & (align - 1), "block of " + size + " aligned to " + align);
                    assertTrue(a >= prevEnd, "blocks do not overlap");
                    prevEnd = a + size;
                    assertTrue(prevEnd <= arena.base() + arena.used());
                    // Both ends are writable and read back; a fresh block reads zero.
                    assertEquals(0, mmu.getByte(a));
                    assertEquals(0, mmu.getByte(a + size - 1));
                    mmu.putByte(a, (byte) 1);
                    mmu.putByte(a + size - 1, (byte) 2);
                }
            }
            assertTrue(arena.committed() >= arena.used() && arena.committed() % (1L << 20) == 0);
        }
    }

    @Test
    void shouldRejectBadInputWithoutChangingAnything() {
        assertThrows(IllegalArgumentException.class, () -> new ReserveCommitArena(null, 1L << 20, PAGE));
        assertThrows(IllegalArgumentException.class, () -> new ReserveCommitArena(as, 0, PAGE));
        assertThrows(IllegalArgumentException.class, () -> new ReserveCommitArena(as, (1L << 20) + 1, PAGE));
        assertThrows(IllegalArgumentException.class, () -> new ReserveCommitArena(as, 1L << 20, 100));
        assertThrows(IllegalArgumentException.class, () -> new ReserveCommitArena(as, 1L << 20, 2L << 20));
        assertEquals(0, as.stats().vmaCount(), "a rejected arena reserves nothing");
        try (ReserveCommitArena arena = new ReserveCommitArena(as, 1L << 20, PAGE)) {
            for (long[] bad : new long[][] {{0, 8}, {-1, 8}, {8, 0}, {8, -8}, {8, 3}, {8, 24},
                                            {(1L << 20) + 1, 8}, {8, 2L << 20}, {Long.MAX_VALUE, 8}}) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> arena.allocate(bad[0], bad[1]));
                assertTrue(e.getMessage().contains("size=" + bad[0]), e.getMessage());
            }
            assertEquals(0, arena.used());
            assertEquals(0, arena.committed());
        }
    }

    @Test
    void shouldFaultOnAWritePastABlockIntoItsGuardPageAndWriteNothing() {
        try (ReserveCommitArena arena = ReserveCommitArena.builder(as).reserve(16L << 20).commitChunk(1L << 20)
                .guardPages(true).build()) {
            long a = arena.allocate(100, 4);
            long b = arena.allocate(PAGE, PAGE);
            // The block ends at its guard page.
            assertEquals(0, (a + 100) & (PAGE - 1));
            mmu.putInt(a + 96, 7);
            FaultException e = assertThrows(FaultException.class, () -> mmu.putInt(a + 100, 1));
            assertEquals(FaultException.Kind.ACCERR, e.kind());
            assertEquals(a + 100, e.address());
            // A store straddling the end happens whole or not at all.
            assertThrows(FaultException.class, () -> mmu.putLong(a + 96, -1L));
            assertEquals(7, mmu.getInt(a + 96), "the straddling store wrote nothing");
            byte[] big = new byte[200];
            java.util.Arrays.fill(big, (byte) 9);
            FaultException bulk = assertThrows(FaultException.class, () -> mmu.write(a, big, 0, big.length));
            assertEquals(a + 100, bulk.address());
            assertThrows(FaultException.class, () -> mmu.getByte(b + PAGE), "the next block has its guard");
            assertThrows(FaultException.class, () -> mmu.getByte(b - 1), "the first block's guard lies before it");
            mmu.putLong(b, 1);
            assertEquals(1, mmu.getLong(b));
            arena.reset();
            assertEquals(0, as.stats().rssPages());
            // After a reset the guards go and the range is recommitted whole.
            long c = arena.allocate(2 * PAGE, PAGE);
            assertEquals(arena.base(), c);
            mmu.putLong(c + PAGE, 3);
            assertEquals(3, mmu.getLong(c + PAGE));
        }
    }

    @Test
    void shouldGiveEveryPageBackOnResetAndHandOutZeros() {
        try (ReserveCommitArena arena = new ReserveCommitArena(as, 1L << 30, 2L << 20)) {
            long total = 32L << 20;
            long first = 0;
            for (long done = 0; done < total; done += 64 << 10) {
                long a = arena.allocate(64 << 10, 64);
                first = done == 0 ? a : first;
                for (long off = 0; off < 64 << 10; off += PAGE) {
                    mmu.putLong(a + off, 0xDEADBEEFL);
                }
            }
            assertEquals(total / PAGE, as.stats().rssPages());
            long tables = as.stats().pageTableBytes();
            arena.reset();
            assertEquals(0, as.stats().rssPages(), "DONTNEED dropped every page");
            assertEquals(0, arena.used());
            assertEquals(0, arena.committed());
            assertTrue(as.stats().pageTableBytes() <= tables - 16 * PAGE, "the 16 PTE tables went with the pages");
            long keep = first;
            assertEquals(FaultException.Kind.ACCERR,
                    assertThrows(FaultException.class, () -> mmu.getLong(keep)).kind(), "a block used after reset faults");
            long again = arena.allocate(total, PAGE);
            assertEquals(first, again, "the reservation stays");
            for (long off = 0; off < total; off += PAGE) {
                if (mmu.getLong(again + off) != 0) {
                    throw new AssertionError("nonzero at offset " + off + " after reset");
                }
            }
            // Reads of untouched pages map the zero page: still no resident page.
            assertEquals(0, as.stats().rssPages());
        }
    }

    @Test
    void shouldKeepThePageTablesOnResetWhenAskedAndStillDropEveryPage() {
        try (ReserveCommitArena arena = ReserveCommitArena.builder(as).reserve(1L << 30).keepPageTables(true).build()) {
            long a = arena.allocate(8L << 20, PAGE);
            for (long off = 0; off < 8L << 20; off += PAGE) {
                mmu.putLong(a + off, off);
            }
            long tables = as.stats().pageTableBytes();
            arena.reset();
            assertEquals(0, as.stats().rssPages());
            assertEquals(tables, as.stats().pageTableBytes(), "the tables stay, as after MADV_DONTNEED");
            assertThrows(FaultException.class, () -> mmu.getLong(a));
            long b = arena.allocate(8L << 20, PAGE);
            assertEquals(a, b);
            assertEquals(0, mmu.getLong(b + (4L << 20)), "zero after reset");
        }
    }

    @Test
    void shouldLetTheHostTakeTheFramesBackAfterReset() throws InterruptedException {
        try (PhysicalMemory reporting = PhysicalMemory.builder().capacity(64L << 20)
                     .reportFreeAfter(java.time.Duration.ZERO).build();
             AddressSpace space = AddressSpace.create(reporting, VmConfig.defaults());
             Mmu own = space.attach();
             ReserveCommitArena arena = new ReserveCommitArena(space, 1L << 30, 2L << 20)) {
            for (long done = 0; done < 32L << 20; done += 1L << 20) {
                long a = arena.allocate(1L << 20, 8);
                for (long off = 0; off < 1L << 20; off += PAGE) {
                    own.putLong(a + off, 1);
                }
            }
            assertTrue(reporting.committedBytes() >= 32L << 20);
            arena.reset();
            // What may stay: this thread's frame cache (2 MiB at most) and the blocks holding the
            // upper-level tables; 32 MiB of freed pages must go back.
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (reporting.committedBytes() > 6L << 20 && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            assertTrue(reporting.committedBytes() <= 6L << 20, "host still holds " + reporting.committedBytes());
        }
    }

    @Test
    void shouldCommitWholeHugePagesWhenAskedAndFreeThemWholeOnReset() {
        assertThrows(IllegalArgumentException.class,
                () -> ReserveCommitArena.builder(as).reserve(3L << 20).commitChunk(1L << 20).hugePages(true).build());
        for (boolean keep : new boolean[] {false, true}) {
            try (ReserveCommitArena arena = ReserveCommitArena.builder(as).reserve(64L << 20).hugePages(true)
                    .keepPageTables(keep).build()) {
                assertEquals(0, arena.base() & ((2L << 20) - 1), "2 MiB aligned");
                for (int cycle = 0; cycle < 2; cycle++) {
                    for (long done = 0; done < 8L << 20; done += 64 << 10) {
                        long a = arena.allocate(64 << 10, 8);
                        // A write first: a read first would map the 4 KiB zero page.
                        mmu.putLong(a, 1);
                        assertEquals(0, mmu.getLong(a + 8), "zero, cycle " + cycle);
                    }
                    assertEquals(4, as.stats().hugePages(), "keep=" + keep + ", cycle " + cycle);
                    assertEquals(4 * 512, as.stats().rssPages());
                    arena.reset();
                    assertEquals(0, as.stats().rssPages());
                    assertEquals(0, as.stats().hugePages());
                }
            }
        }
    }

    @Test
    void shouldSayClearlyWhenTheReservationIsExhausted() {
        try (ReserveCommitArena arena = new ReserveCommitArena(as, 1L << 20, 1L << 20)) {
            arena.allocate((1L << 20) - 8, 8);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> arena.allocate(16, 8));
            assertTrue(e.getMessage().contains("arena exhausted") && e.getMessage().contains("reset()"), e.getMessage());
            assertEquals((1L << 20) - 8, arena.used(), "a failed allocation allocates nothing");
            arena.allocate(8, 8);
            assertEquals(1L << 20, arena.used(), "the last 8 bytes still fit exactly");
            arena.reset();
            assertEquals(arena.base(), arena.allocate(1L << 20, PAGE), "after a reset the whole reservation fits");
        }
        try (ReserveCommitArena guarded = ReserveCommitArena.builder(as).reserve(2 * PAGE).commitChunk(PAGE)
                .guardPages(true).build()) {
            guarded.allocate(PAGE, 8);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> guarded.allocate(1, 1));
            assertTrue(e.getMessage().contains("guard page"), e.getMessage());
        }
    }

    @Test
    void shouldUnmapEverythingOnCloseAndRefuseUseAfter() {
        ReserveCommitArena arena = ReserveCommitArena.builder(as).reserve(1L << 30).commitChunk(1L << 20)
                .guardPages(true).build();
        long a = arena.allocate(3L << 20, PAGE);
        for (long off = 0; off < 3L << 20; off += PAGE) {
            mmu.putByte(a + off, (byte) 1);
        }
        assertTrue(as.stats().vmaCount() > 1);
        arena.close();
        arena.close();
        assertEquals(0, as.stats().vmaCount());
        assertEquals(0, as.stats().rssPages());
        assertEquals(FaultException.Kind.MAPERR, assertThrows(FaultException.class, () -> mmu.getByte(a)).kind());
        assertThrows(IllegalStateException.class, () -> arena.allocate(8, 8));
        assertThrows(IllegalStateException.class, arena::reset);
        // tearDown's as.close() verifies that no page, table or frame leaked.
    }

    @Test
    void shouldHandOutDisjointBlocksToManyThreads() throws InterruptedException {
        int threads = 4;
        int perThread = 2000;
        try (ReserveCommitArena arena = new ReserveCommitArena(as, 1L << 30, 64L << 10)) {
            Set<Long> starts = ConcurrentHashMap.newKeySet();
            CountDownLatch go = new CountDownLatch(1);
            Throwable[] failure = new Throwable[threads];
            Thread[] ts = new Thread[threads];
            for (int t = 0; t < threads; t++) {
                int id = t;
                ts[t] = new Thread(() -> {
                    try (Mmu own = as.attach()) {
                        go.await();
                        Set<Long> mine = new HashSet<>();
                        for (int i = 0; i < perThread; i++) {
                            long a = arena.allocate(1000, 8);
                            own.putLong(a, ((long) id << 32) | i);
                            own.putLong(a + 992, ((long) id << 32) | i);
                            mine.add(a);
                        }
                        // Nobody else wrote into this thread's blocks.
                        int i = 0;
                        for (long a : mine) {
                            long v = own.getLong(a);
                            if (v >>> 32 != id || own.getLong(a + 992) != v) {
                                throw new AssertionError("block 0x" + Long.toHexString(a) + " overwritten");
                            }
                            i++;
                        }
                        assertEquals(perThread, i);
                        starts.addAll(mine);
                    } catch (Throwable e) {
                        failure[id] = e;
                    }
                });
                ts[t].start();
            }
            go.countDown();
            for (Thread t : ts) {
                t.join();
            }
            for (Throwable f : failure) {
                if (f != null) {
                    throw new AssertionError(f);
                }
            }
            // Forbidden outcome: two threads handed the same block.
            assertEquals(threads * perThread, starts.size());
            assertTrue(arena.used() >= threads * perThread * 1000L);
        }
    }
}
