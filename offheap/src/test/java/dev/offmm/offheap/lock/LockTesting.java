package dev.offmm.offheap.lock;

import java.util.concurrent.TimeUnit;

/** Helpers for lock tests. */
final class LockTesting {
    private LockTesting() {
    }

    /**
     * Waits until {@code t} is parked in the spin back-off (TIMED_WAITING): only a thread that
     * found the lock held gets there. Fails after 10 s.
     */
    static void awaitParked(Thread t) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (t.getState() != Thread.State.TIMED_WAITING) {
            if (System.nanoTime() > deadline || !t.isAlive()) {
                throw new AssertionError("thread " + t.getName() + " never waited for the lock (state " + t.getState() + ")");
            }
            Thread.sleep(1);
        }
    }
}
