package dev.offmm.examples;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.Mmu;
import dev.offmm.core.VmConfig;
import dev.offmm.offheap.PhysicalMemory;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The examples work and stay working. */
class ExamplesTest {
    @Test
    void shouldCommitOnDemandAndDropEverythingOnReset() {
        try (PhysicalMemory memory = PhysicalMemory.create(64L << 20);
             AddressSpace as = AddressSpace.create(memory, VmConfig.defaults());
             Mmu mmu = as.attach();
             dev.offmm.examples.arena.ReserveCommitArena arena
                     = new dev.offmm.examples.arena.ReserveCommitArena(as, 1L << 30, 1L << 20)) {
            assertEquals(0, as.stats().rssPages());
            long a = arena.allocate(3 << 20, 4096);
            assertEquals(3L << 20, arena.committed());
            mmu.putLong(a + (2 << 20), 5);
            assertEquals(5, mmu.getLong(a + (2 << 20)));
            assertEquals(1, as.stats().rssPages());
            arena.reset();
            assertEquals(0, as.stats().rssPages());
            assertThrows(dev.offmm.core.FaultException.class, () -> mmu.getLong(a));
            long b = arena.allocate(8, 8);
            assertEquals(0, mmu.getLong(b), "recommitted memory is zeroed");
            assertThrows(IllegalStateException.class, () -> arena.allocate(1L << 30, 8));
        }
    }

    @Test
    void shouldHitMissAndEvictWithoutTornReads() throws InterruptedException {
        try (PhysicalMemory memory = PhysicalMemory.create(64L << 20);
             AddressSpace as = AddressSpace.create(memory, VmConfig.defaults())) {
            try (Mmu mmu = as.attach(); ConcurrentPageCache cache = new ConcurrentPageCache(as, 64)) {
                byte[] v = {1, 2, 3};
                byte[] r = new byte[3];
                assertFalse(cache.get(mmu, 7, r));
                cache.put(mmu, 7, v);
                assertTrue(cache.get(mmu, 7, r));
                assertArrayEquals(v, r);
                assertFalse(cache.get(mmu, 7 + 64, r), "another key in the slot is a miss");
                cache.evict(7, 1);
                assertFalse(cache.get(mmu, 7, r), "evicted");
                assertEquals(0, as.stats().rssPages());
            }
            ExamplesMain.cache(as, 4, 0.3);
            ExamplesMain.arena(as);
        }
    }

    @Test
    void shouldTakeConsistentSnapshotsOfALiveStoreAndGiveEverythingBack() throws InterruptedException {
        try (PhysicalMemory memory = PhysicalMemory.create(128L << 20);
             AddressSpace as = AddressSpace.create(memory, VmConfig.defaults())) {
            // Throws if a snapshot holds a torn record; leaves the store unmapped.
            SnapshotExample.run(as, 2, 0.3, 1L << 16);
            assertEquals(0, as.stats().rssPages(), "the store is unmapped and every snapshot closed");
            assertTrue(as.stats().forks() > 0);
        }
    }
}
