package dev.offmm.core;

import dev.offmm.offheap.PhysicalMemory;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The fault path counts into its context's own buffer, folded into the address space's totals
 * when the context closes or its thread is found dead. {@code stats()} must still be exact once
 * no thread is inside a call, whichever way each thread ended: closed its Mmu, stopped (parked)
 * with it open, or died without closing it. Every lock mode, inline and debug.
 */
class FoldedCountsTest {
    private static final long PAGE = 4096;
    private static final int THREADS = 6;
    /** Pages each thread write-faults, and pages it read-faults (zero page), in its own range. */
    private static final int WRITES = 300;
    private static final int READS = 40;

    /** How a worker ends. */
    private enum End { CLOSE, PARK, DIE }

    @ParameterizedTest
    @MethodSource("dev.offmm.core.Modes#all")
    void shouldCountExactlyWhetherContextsClosedStoppedOrDiedWithoutClosing(VmConfig config) throws Exception {
        try (PhysicalMemory memory = PhysicalMemory.create(64L << 20);
             AddressSpace as = AddressSpace.create(memory, config)) {
            long span = (WRITES + READS) * PAGE;
            long base = as.mmap(0, THREADS * span, Prot.READ | Prot.WRITE, MapFlags.NONE);
            CountDownLatch stopped = new CountDownLatch(THREADS);
            CountDownLatch release = new CountDownLatch(1);
            List<Thread> ts = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                long mine = base + t * span;
                End end = End.values()[t % End.values().length];
                Thread th = new Thread(() -> {
                    Mmu mmu = as.attach();
                    for (int i = 0; i < WRITES; i++) {
                        mmu.putLong(mine + i * PAGE, i);
                    }
                    for (int i = WRITES; i < WRITES + READS; i++) {
                        mmu.getLong(mine + i * PAGE);
                    }
                    if (end == End.CLOSE) {
                        mmu.close();
                    }
                    stopped.countDown();
                    if (end == End.PARK) {
                        try {
                            release.await();
                        } catch (InterruptedException e) {
                            throw new AssertionError(e);
                        }
                        mmu.close();
                    }
                    // DIE: the thread ends with its Mmu open.
                }, "worker-" + t + "-" + end);
                th.start();
                ts.add(th);
            }
            stopped.await();
            for (int t = 0; t < THREADS; t++) {
                if (End.values()[t % End.values().length] == End.DIE) {
                    ts.get(t).join();
                }
            }
            long writes = (long) THREADS * WRITES;
            long reads = (long) THREADS * READS;
            VmStats s = as.stats();
            assertEquals(writes, s.rssPages(), "RSS counted in contexts that closed, parked or died");
            assertEquals(writes, s.faults("anon"), "anonymous write faults");
            assertEquals(reads, s.faults("zero"), "zero-page read faults");
            assertEquals(writes, s.pagesAllocated(), "pages allocated");
            // The range's PTE tables: (6 x 340 pages) / 512 per table, rounded up per 2 MiB.
            long tables = (base + THREADS * span - 1) / (512 * PAGE) - base / (512 * PAGE) + 1;
            assertEquals(tables * PAGE, s.pteTableBytes(), "PTE tables, allocated by whichever context faulted first");
            release.countDown();
            for (Thread th : ts) {
                th.join();
            }
            as.munmap(base, THREADS * span);
            VmStats after = as.stats();
            assertEquals(0, after.rssPages(), "RSS after munmap, contexts folded or not");
            assertEquals(0, after.pteTableBytes());
            assertEquals(writes, after.faults("anon"), "counts survive the contexts that made them");
        }
    }
}
