package dev.offmm.examples;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.Mmu;
import dev.offmm.core.VmConfig;
import dev.offmm.examples.cache.CacheBench;
import dev.offmm.examples.cache.CacheStats;
import dev.offmm.offheap.PhysicalMemory;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
    void shouldRunTheCacheExampleWithoutWrongValues() throws InterruptedException {
        CacheStats s = ExamplesMain.cache(2, 0.5);
        assertTrue(s.hitCount() > 0 && s.missCount() > 0 && s.putCount() > 0, s.toString());
        assertTrue(s.slabBytes() <= s.budgetBytes(), s.toString());
    }

    @Test
    void shouldRunTheCacheBenchTinyAndReportEveryPeer() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        ByteArrayOutputStream errs = new ByteArrayOutputStream();
        int code = CacheBench.run(new String[] {"--entries", "20000", "--threads", "1", "--rounds", "1",
            "--seconds", "0.5", "--warmup", "0.2", "--xmx", "512m"},
                new PrintStream(bytes, true, StandardCharsets.UTF_8), new PrintStream(errs, true, StandardCharsets.UTF_8));
        String out = bytes.toString(StandardCharsets.UTF_8);
        assertEquals(0, code, out + errs);
        List<String> rows = out.lines().dropWhile(l -> !l.equals(CacheBench.CSV_HEADER)).skip(1).toList();
        assertEquals(3, rows.size(), out);
        for (String row : rows) {
            String[] f = row.split(",");
            assertTrue(Long.parseLong(f[5]) > 1000, "throughput of " + row);
            assertTrue(Long.parseLong(f[7]) > 0 && Double.parseDouble(f[8]) > 0.1, "p99 and hit rate of " + row);
            assertTrue(Long.parseLong(f[11]) > 0 && Long.parseLong(f[12]) > 0, "heap and RSS of " + row);
        }
        assertTrue(rows.get(0).startsWith("1,offmm,1,") && Long.parseLong(rows.get(0).split(",")[13]) > 0, out);
        // A usage error is one line and status 2, not a stack trace.
        errs.reset();
        assertEquals(2, CacheBench.run(new String[] {"--threads", "-1"}, new PrintStream(bytes), new PrintStream(errs)));
        assertEquals(1, errs.toString().lines().count(), errs.toString());
        assertTrue(errs.toString().contains("--threads"), errs.toString());
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
