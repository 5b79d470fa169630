package dev.offmm.stress;

import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.LockClass;
import dev.offmm.offheap.lock.PtLocks;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * A fixed set of page-table locks built once per test VM: the ptl words of {@value #SIZE} table
 * frames, inline or debug. States take them round robin; two live states may share a lock, which
 * only adds contention (each state's two actors still use one lock).
 */
final class LockPool {
    static final int SIZE = 256;

    final PtLocks locks;
    private final long[] handles = new long[SIZE];
    private final AtomicInteger next = new AtomicInteger();

    LockPool(boolean debug) {
        PhysicalMemory memory = StressMemory.MEMORY;
        this.locks = new PtLocks(memory.zone().memMap(), memory.zone().lockSlab(), debug);
        for (int i = 0; i < SIZE; i++) {
            long pfn = memory.zone().allocFrame();
            memory.zone().memMap().setTypeRelease(pfn, MemMap.TYPE_PTE_TABLE);
            if (!locks.ptlockInit(pfn, LockClass.PTE)) {
                throw new IllegalStateException("no debug lock");
            }
            handles[i] = locks.ptlockPtr(pfn);
        }
    }

    /** The next lock's handle. */
    long take() {
        return handles[next.getAndIncrement() & (SIZE - 1)];
    }
}
