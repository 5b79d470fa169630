package dev.offmm.bench.stat;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.VmStats;
import dev.offmm.offheap.LockClass;
import dev.offmm.offheap.PhysicalMemory;
import org.agrona.concurrent.status.AtomicCounter;
import org.agrona.concurrent.status.CountersManager;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.LongSupplier;

/**
 * Exports an address space's counters into an Agrona {@link CountersManager} over a memory-mapped
 * file every {@value #PERIOD_MILLIS} ms, for {@code offmm stat} to watch from another process.
 *
 * <p>The fault path only ever increments offmm's own striped {@code LongAdder}s; this exporter
 * sums them on its own thread, so live counting adds nothing to the measured loops. Counters are
 * cumulative across the address spaces a run measures one after another (gauges aside).
 */
public final class LiveCounters implements AutoCloseable {
    static final long PERIOD_MILLIS = 100;

    /** Counter names, in file order. Gauges end in "!". */
    static final String[] NAMES = {
        "ops", "faults.anon", "faults.zero", "faults.cow", "faults.reuse", "faults.spurious", "faults.maperr",
        "faults.accerr", "faults.oom", "faults.fallback", "pages.alloc", "pages.free", "tables.alloc",
        "tables.free", "ptl.acq", "ptl.cont", "pmd.acq", "pmd.cont", "pte.acq", "pte.cont", "tlb.flushes",
        "grace.periods", "rss!", "grace.pending!", "frames.free!", "mem.committed!", "mem.reported!", "mem.structpages!",
        "proc.rss!", "faults.thp", "faults.hugetlb", "thp.fallback", "thp.split", "thp.collapse", "huge!",
    };

    private final Path file;
    private final CounterFile mapped;
    private final AtomicCounter[] counters = new AtomicCounter[NAMES.length];
    private final long[] base = new long[NAMES.length];
    private final long[] last = new long[NAMES.length];
    private final Thread exporter;
    private volatile AddressSpace source;
    private volatile LongSupplier ops = () -> 0;
    private volatile boolean closed;

    private LiveCounters(Path file) throws IOException {
        this.file = file;
        this.mapped = CounterFile.create(file);
        CountersManager manager = new CountersManager(mapped.metadata, mapped.values);
        for (int i = 0; i < NAMES.length; i++) {
            counters[i] = manager.newCounter(NAMES[i]);
        }
        exporter = new Thread(this::exportLoop, "offmm-live-counters");
        exporter.setDaemon(true);
        exporter.start();
    }

    /** Creates {@code <tmpdir>/offmm-stat/<pid>.cnc} and starts exporting. */
    public static LiveCounters create() throws IOException {
        return new LiveCounters(CounterFile.directory().resolve(ProcessHandle.current().pid() + ".cnc"));
    }

    /** The counters file. */
    public Path file() {
        return file;
    }

    /** Switches the exported address space (null: none) and operation count. */
    public synchronized void source(AddressSpace as, LongSupplier opsSupplier) {
        export();
        for (int i = 0; i < NAMES.length; i++) {
            if (!NAMES[i].endsWith("!")) {
                base[i] = last[i];
            }
        }
        this.source = as;
        this.ops = opsSupplier == null ? () -> 0 : opsSupplier;
    }

    private void exportLoop() {
        while (!closed) {
            try {
                Thread.sleep(PERIOD_MILLIS);
                synchronized (this) {
                    export();
                }
            } catch (InterruptedException e) {
                return;
            } catch (RuntimeException e) {
                // The source was closed under us (IllegalStateException): the next switch fixes it.
                continue;
            }
        }
    }

    private void export() {
        AddressSpace as = source;
        long[] v = new long[NAMES.length];
        v[0] = ops.getAsLong();
        if (as != null && !as.isClosed()) {
            VmStats s = as.stats();
            v[1] = s.faults("anon");
            v[2] = s.faults("zero");
            v[3] = s.faults("cow");
            v[4] = s.faults("reuse");
            v[5] = s.faults("spurious");
            v[6] = s.faults("maperr");
            v[7] = s.faults("accerr");
            v[8] = s.faults("oom");
            v[9] = s.faults("mmapLockFallback");
            v[10] = s.pagesAllocated();
            v[11] = s.pagesFreed();
            v[12] = s.tablesAllocated();
            v[13] = s.tablesFreed();
            v[14] = s.lockAcquisitions().get(LockClass.PAGE_TABLE_LOCK);
            v[15] = s.lockContentions().get(LockClass.PAGE_TABLE_LOCK);
            v[16] = s.lockAcquisitions().get(LockClass.PMD);
            v[17] = s.lockContentions().get(LockClass.PMD);
            v[18] = s.lockAcquisitions().get(LockClass.PTE);
            v[19] = s.lockContentions().get(LockClass.PTE);
            v[20] = s.tlbFlushes();
            v[21] = s.gracePeriods();
            v[22] = s.rssPages();
            v[23] = s.pendingFreeFrames();
            v[29] = s.faults("thp");
            v[30] = s.faults("hugetlb");
            v[31] = s.faults("thpFallback");
            v[32] = s.thpSplits();
            v[33] = s.thpCollapses();
            v[34] = s.hugePages();
            PhysicalMemory m = as.memory();
            if (!m.isClosed()) {
                v[24] = m.freeFrameCount();
                v[25] = m.committedBytes() >>> 20;
                v[26] = m.reportedFrameCount() * PhysicalMemory.PAGE_SIZE >>> 20;
                v[27] = m.structPageBytes() >>> 20;
            }
        }
        v[28] = processRssBytes() >>> 20;
        for (int i = 0; i < NAMES.length; i++) {
            long value = NAMES[i].endsWith("!") ? v[i] : base[i] + v[i];
            if (as == null && !NAMES[i].endsWith("!")) {
                value = last[i];
            }
            last[i] = value;
            counters[i].setRelease(value);
        }
    }

    /**
     * The process's resident set from {@code /proc/self/statm} (its second field, in pages), or 0
     * where there is none: what the host actually holds, beside offmm's own estimate.
     */
    public static long processRssBytes() {
        try {
            String[] f = Files.readString(Path.of("/proc/self/statm")).trim().split(" ");
            return Long.parseLong(f[1]) * PhysicalMemory.PAGE_SIZE;
        } catch (IOException | RuntimeException e) {
            return 0;
        }
    }

    /** Stops exporting and deletes the file. */
    @Override
    public void close() {
        closed = true;
        exporter.interrupt();
        try {
            exporter.join(1000);
            Files.deleteIfExists(file);
        } catch (InterruptedException | IOException e) {
            Thread.currentThread().interrupt();
        }
    }
}
