package dev.offmm.core;

import dev.offmm.core.pgtable.Entries;
import dev.offmm.offheap.PhysicalMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Stale translations aimed at the set-associative TLB and the paging-structure caches: pages that
 * share a set (and evict each other), a 2 MiB region whose PTE table is cached and then freed by
 * an munmap and replaced by a new table under a new mapping, and a 1 GiB region whose PMD table
 * goes the same way; 2 MiB pages that share an entry of the 2 MiB TLB, and an address beyond the
 * user range whose index bits match one. Each check reads through a context that cached the old
 * structures, in the unmapping thread and in another one, and must see the new mapping's values,
 * never the old.
 */
class TlbSetsAndWalkCacheTest {
    private static final long PAGE = 4096;
    private static final long SET_STRIDE = TlbContext.TLB_SETS * PAGE;
    private static final long REGION = 2L << 20;
    private PhysicalMemory memory;
    private long free;

    @BeforeEach
    void setUp() {
        memory = PhysicalMemory.create(64L << 20);
        free = memory.freeFrameCount();
    }

    @AfterEach
    void tearDown() {
        memory.zone().frames().drainCurrentThread();
        memory.zone().frames().reapDeadCaches();
        memory.zone().lockSlab().shrink();
        long now = memory.freeFrameCount();
        memory.close();
        assertEquals(free, now, "every frame returned");
    }

    static Stream<VmConfig> modes() {
        return Modes.all();
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldKeepEveryWayOfASetRightAcrossEvictionAndRemap(VmConfig config) {
        try (AddressSpace as = AddressSpace.create(memory, config); Mmu mmu = as.attach()) {
            int n = TlbContext.TLB_WAYS + 2; // more pages than ways in one set
            long a = as.mmap(0, n * SET_STRIDE, Prot.READ | Prot.WRITE, MapFlags.NONE);
            for (int round = 0; round < 3; round++) {
                for (int i = 0; i < n; i++) {
                    mmu.putLong(a + i * SET_STRIDE, round * 100L + i);
                }
                for (int rep = 0; rep < 2; rep++) {
                    for (int i = 0; i < n; i++) {
                        assertEquals(round * 100L + i, mmu.getLong(a + i * SET_STRIDE), "page " + i + " of the set");
                    }
                }
                // Replace one page of the set with a fresh mapping: the way holding it must not survive.
                // Scratch pages whose tables exist already: their next faults take data frames.
                long scratch = as.mmap(0, 16 * PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
                mmu.putLong(scratch + 15 * PAGE, -1L);
                long last = a + (n - 1) * SET_STRIDE;
                assertEquals(round * 100L + n - 1, mmu.getLong(last), "read just now: its way is in the TLB");
                as.munmap(last, PAGE);
                // The freed frame comes back zeroed; a scratch page takes it and writes a pattern,
                // so that a stale way would read the pattern rather than a lucky zero.
                for (long off = 0; off < 15 * PAGE; off += PAGE) {
                    for (long w = 0; w < PAGE; w += 8) {
                        mmu.putLong(scratch + off + w, -1L);
                    }
                }
                as.mmap(last, PAGE, Prot.READ | Prot.WRITE, MapFlags.FIXED);
                assertEquals(0, mmu.getLong(last), "the remapped page reads zeros");
                as.munmap(scratch, 16 * PAGE);
                assertEquals(round * 100L + n - 2, mmu.getLong(last - SET_STRIDE), "its neighbour in the set is unchanged");
            }
            as.munmap(a, n * SET_STRIDE);
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldNotWalkThroughAFreedPteOrPmdTable(VmConfig config) throws Exception {
        try (AddressSpace as = AddressSpace.create(memory, config); Mmu mmu = as.attach()) {
            // A 2 MiB region alone in its 1 GiB: unmapping it frees its PTE table and its PMD table.
            long a = as.mmap(1L << 32, REGION, Prot.READ | Prot.WRITE, MapFlags.FIXED);
            AtomicReference<Throwable> failure = new AtomicReference<>();
            CyclicBarrier step = new CyclicBarrier(2);
            long[] expected = new long[1];
            Thread other = new Thread(() -> {
                try (Mmu theirs = as.attach()) {
                    for (int round = 0; round < 4; round++) {
                        step.await(10, TimeUnit.SECONDS); // main wrote the region
                        for (long off = 0; off < REGION; off += 64 * PAGE) {
                            assertEquals(expected[0] + off, theirs.getLong(a + off), "round " + round + " at +" + off);
                        }
                        step.await(10, TimeUnit.SECONDS); // main may unmap now
                    }
                } catch (Throwable e) {
                    failure.set(e);
                    step.reset();
                }
            }, "reader-with-cached-tables");
            other.start();
            for (int round = 0; round < 4; round++) {
                expected[0] = (round + 1) * 1_000_000L;
                for (long off = 0; off < REGION; off += 64 * PAGE) {
                    mmu.putLong(a + off, expected[0] + off);
                }
                // A failure of the other thread breaks or times out these: the test fails, never hangs.
                step.await(10, TimeUnit.SECONDS);
                step.await(10, TimeUnit.SECONDS);
                for (long off = 0; off < REGION; off += 64 * PAGE) {
                    assertEquals(expected[0] + off, mmu.getLong(a + off), "own context, round " + round);
                }
                as.munmap(a, REGION);
                // Reuse the freed frames (the old tables among them) for data, so that a walk
                // through a stale cached table would read this pattern, not a new table.
                long scratch = as.mmap(0, REGION, Prot.READ | Prot.WRITE, MapFlags.NONE);
                for (long off = 0; off < REGION; off += 8) {
                    mmu.putLong(scratch + off, 0x5ca7_c400_0000_0001L);
                }
                as.mmap(a, REGION, Prot.READ | Prot.WRITE, MapFlags.FIXED);
                assertEquals(0, mmu.getLong(a), "a fresh mapping behind the cached tables reads zeros");
                as.munmap(scratch, REGION);
            }
            other.join();
            assertNull(failure.get(), () -> "the other context: " + failure.get());
            as.munmap(a, REGION);
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldKeepHugePagesThatShareAnEntryApartAndNeverHitOutsideTheUserRange(VmConfig config) {
        long stride = (long) TlbContext.HUGE_TLB_ENTRIES * REGION; // same 2 MiB entry, different key
        long a = 1L << 34;
        long b = a + stride;
        int rw = Prot.READ | Prot.WRITE;
        try (AddressSpace as = AddressSpace.create(memory, config); Mmu mmu = as.attach()) {
            for (long va : new long[] {a, b}) {
                as.mmap(va, REGION, rw, MapFlags.FIXED);
                as.madvise(va, REGION, Advice.HUGEPAGE);
            }
            mmu.putLong(a, 1);
            mmu.putLong(b, 2);
            assertEquals(2, as.stats().hugePages(), "both are 2 MiB pages");
            for (int rep = 0; rep < 3; rep++) {
                assertEquals(2, mmu.getLong(b), "b evicted a's entry and must not read a's frame");
                assertEquals(1, mmu.getLong(a), "a evicted b's entry and must not read b's frame");
                // The entry holds a now. Above the user range with the same index bits: a fault,
                // never a hit on a's entry.
                assertThrows(FaultException.class, () -> mmu.getLong(a + Entries.USER_END));
                assertThrows(FaultException.class, () -> mmu.getLong(a | Long.MIN_VALUE));
            }
            // Read-only: the cached writable entry must go, and a write must fault.
            assertEquals(1, mmu.getLong(a));
            as.mprotect(a, REGION, Prot.READ);
            assertThrows(FaultException.class, () -> mmu.putLong(a, 3));
            assertEquals(1, mmu.getLong(a), "still readable");
            // Unmapped and mapped again on other frames (the old ones full of a pattern): zeros.
            as.munmap(a, REGION);
            long scratch = as.mmap(0, 4 * REGION, rw, MapFlags.NONE);
            for (long off = 0; off < 4 * REGION; off += 8) {
                mmu.putLong(scratch + off, 0x5ca7_c400_0000_0001L);
            }
            as.mmap(a, REGION, rw, MapFlags.FIXED);
            as.madvise(a, REGION, Advice.HUGEPAGE);
            assertEquals(0, mmu.getLong(a), "a fresh mapping reads zeros");
            mmu.putLong(a, 4);
            assertEquals(4, mmu.getLong(a));
            assertEquals(2, mmu.getLong(b));
            as.munmap(scratch, 4 * REGION);
            as.munmap(a, REGION);
            as.munmap(b, REGION);
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldDropEveryOldEntryWhenTheFlushEpochStartsAgain(VmConfig config) {
        int rw = Prot.READ | Prot.WRITE;
        long period = TlbContext.MAX_EPOCH + 1;
        try (AddressSpace as = AddressSpace.create(memory, config); Mmu mmu = as.attach()) {
            long a = as.mmap(1L << 34, REGION, rw, MapFlags.FIXED);
            as.madvise(a, REGION, Advice.HUGEPAGE);
            mmu.putLong(a, 7);
            assertEquals(7, mmu.getLong(a));
            long epoch = mmu.tlbFlushes() % period; // the epoch a's 2 MiB entry and walk-cache entries carry
            as.munmap(a, REGION);
            long scratch = as.mmap(0, 4 * REGION, rw, MapFlags.NONE);
            for (long off = 0; off < 4 * REGION; off += 8) {
                mmu.putLong(scratch + off, 0x5ca7_c400_0000_0001L);
            }
            as.mmap(a, REGION, rw, MapFlags.FIXED);
            // Flush (without touching a) until the next access's own flush brings the epoch round
            // to a's again: an entry that outlived the wrap-around would hit there.
            long start = mmu.tlbFlushes();
            while (mmu.tlbFlushes() - start < period || (mmu.tlbFlushes() + 1) % period != epoch) {
                mmu.idle();
            }
            assertEquals(0, mmu.getLong(a), "the epoch came round again: the old 2 MiB entry must be gone");
            assertEquals(epoch, mmu.tlbFlushes() % period, "the check ran in the old entry's epoch");
            as.munmap(scratch, 4 * REGION);
            as.munmap(a, REGION);
        }
    }
}
