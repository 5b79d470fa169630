package dev.offmm.offheap.frame;

import org.junit.jupiter.api.Test;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

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
    private static final int ROUNDS = 200_000;

    /** Plain, unsynchronised: only the lock makes its read-modify-write atomic. */
    private long counter;

    @Test
    void shouldExcludeEveryOtherHolderWhenThreadsOutnumberCores() throws Exception {
        ZoneLock lock = new ZoneLock();
        runIncrements(lock::lock, lock::unlock);
        assertEquals((long) THREADS * ROUNDS, counter, "lost updates: two holders at once");
        assertFalse(lock.isLocked());
        assertTrue(lock.contendedAcquisitions() > 0, "8 threads on a few cores never contended");
    }

    /** The control: the same increments without the lock do lose updates, so the test can fail. */
    @Test
    void controlWithoutTheLockLosesUpdates() throws Exception {
        long best = Long.MAX_VALUE;
        for (int attempt = 0; attempt < 5 && best == Long.MAX_VALUE; attempt++) {
            counter = 0;
            runIncrements(() -> { }, () -> { });
            if (counter != (long) THREADS * ROUNDS) {
                best = counter;
            }
        }
        assertTrue(best < (long) THREADS * ROUNDS, "unlocked increments never lost an update");
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
        CountDownLatch start = new CountDownLatch(1);
        Thread[] ts = new Thread[THREADS];
        for (int t = 0; t < THREADS; t++) {
            ts[t] = new Thread(() -> {
                try {
                    start.await();
                } catch (InterruptedException e) {
                    throw new AssertionError(e);
                }
                for (int i = 0; i < ROUNDS; i++) {
                    lock.run();
                    try {
                        counter++;
                    } finally {
                        unlock.run();
                    }
                }
            });
            ts[t].start();
        }
        start.countDown();
        for (Thread t : ts) {
            t.join();
        }
    }
}
