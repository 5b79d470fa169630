package dev.offmm.offheap.frame;

import org.junit.jupiter.api.Test;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The zone lock's spin-then-park mutex. Forbidden outcomes: a lost update of a plain counter
 * incremented under the lock (mutual exclusion broken), a waiter never woken (the test times out),
 * an interrupt swallowed.
 */
class ZoneLockTest {
    /** Threads well above this machine's cores, so holders are preempted and waiters park. */
    private static final int THREADS = 8;
    private static final int ROUNDS = 50_000;

    /** Plain, unsynchronised: only the lock makes its read-modify-write atomic. */
    private long counter;
    /** Holders inside the critical section right now, and times a holder found another there. */
    private final AtomicInteger inside = new AtomicInteger();
    private final AtomicInteger overlaps = new AtomicInteger();

    @Test
    void shouldExcludeEveryOtherHolderWhenThreadsOutnumberCores() throws Exception {
        ZoneLock lock = new ZoneLock();
        runIncrements(lock::lock, lock::unlock);
        assertEquals(0, overlaps.get(), "two holders inside at once");
        assertEquals((long) THREADS * ROUNDS, counter, "lost updates: two holders at once");
        assertFalse(lock.isLocked());
        assertTrue(lock.contendedAcquisitions() > 0, "8 threads on a few cores never contended");
    }

    /** The control: the same critical sections without the lock do overlap, so the test can fail. */
    @Test
    void controlWithoutTheLockSeesHoldersOverlap() throws Exception {
        runIncrements(() -> { }, () -> { });
        assertTrue(overlaps.get() > 0, "unlocked critical sections never overlapped: the test could not fail");
    }

    @Test
    void shouldWakeAParkedWaiterAndKeepItsInterrupt() throws Exception {
        ZoneLock lock = new ZoneLock();
        lock.lock();
        CountDownLatch acquired = new CountDownLatch(1);
        AtomicBoolean interruptKept = new AtomicBoolean();
        Thread waiter = new Thread(() -> {
            lock.lock();
            interruptKept.set(Thread.currentThread().isInterrupted());
            lock.unlock();
            acquired.countDown();
        });
        waiter.start();
        // Long past the spin phase: the waiter is parked (or about to park) on the lock.
        while (waiter.getState() != Thread.State.WAITING) {
            Thread.onSpinWait();
        }
        waiter.interrupt();
        assertFalse(acquired.await(50, TimeUnit.MILLISECONDS), "an interrupt aborted the acquisition");
        lock.unlock();
        assertTrue(acquired.await(10, TimeUnit.SECONDS), "the unlock did not wake the parked waiter");
        assertTrue(interruptKept.get(), "the interrupt was swallowed");
        waiter.join();
    }

    private void runIncrements(Runnable lock, Runnable unlock) throws InterruptedException {
        counter = 0;
        overlaps.set(0);
        // A spinning start: parked threads wake one by one, milliseconds apart, long enough for
        // each to finish alone; spinning ones start together.
        AtomicInteger arrived = new AtomicInteger();
        AtomicBoolean go = new AtomicBoolean();
        Thread[] ts = new Thread[THREADS];
        for (int t = 0; t < THREADS; t++) {
            ts[t] = new Thread(() -> {
                arrived.incrementAndGet();
                while (!go.get()) {
                    Thread.onSpinWait();
                }
                for (int i = 0; i < ROUNDS; i++) {
                    lock.run();
                    try {
                        if (inside.incrementAndGet() != 1) {
                            overlaps.incrementAndGet();
                        }
                        counter++;
                        // Long enough for another thread to arrive while this one is inside.
                        for (int k = 0; k < 4; k++) {
                            Thread.onSpinWait();
                        }
                        inside.decrementAndGet();
                    } finally {
                        unlock.run();
                    }
                }
            });
            ts[t].start();
        }
        while (arrived.get() < THREADS) {
            Thread.onSpinWait();
        }
        go.set(true);
        for (Thread t : ts) {
            t.join();
        }
    }
}
