package dev.offmm.core;

import dev.offmm.offheap.PhysicalMemory;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CyclicBarrier;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** What the spec and stress suites share: starting racing threads together, and the leak check at close. */
final class TestSupport {
    private TestSupport() {
    }

    /**
     * Runs each body on its own thread, all released by one barrier, and waits for them; rethrows
     * the first failure with the others suppressed.
     */
    static void runAll(List<Runnable> bodies) {
        CyclicBarrier start = new CyclicBarrier(bodies.size());
        ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
        List<Thread> threads = new ArrayList<>();
        for (Runnable body : bodies) {
            Thread t = new Thread(() -> {
                try {
                    start.await();
                    body.run();
                } catch (Throwable e) {
                    errors.add(e);
                }
            });
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) {
            try {
                t.join();
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        }
        if (!errors.isEmpty()) {
            AssertionError e = new AssertionError("a thread failed: " + errors.peek(), errors.peek());
            errors.forEach(e::addSuppressed);
            throw e;
        }
    }

    /**
     * Closes {@code memory} (if not null) after checking that every frame it had free at the start,
     * {@code initialFree}, is free again: every thread's frame cache drained and dead threads'
     * caches reaped first, the debug-lock slab's pages aside.
     */
    static void closeAndCheckNoLeak(PhysicalMemory memory, long initialFree) {
        if (memory == null) {
            return;
        }
        memory.zone().frames().drainAllCaches();
        memory.zone().frames().reapDeadCaches();
        long free = memory.freeFrameCount();
        long slabPages = memory.zone().lockSlab().pages();
        memory.close();
        assertEquals(initialFree, free + slabPages, "every frame is returned (slab pages aside)");
    }
}
