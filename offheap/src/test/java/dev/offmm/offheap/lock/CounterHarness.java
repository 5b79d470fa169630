package dev.offmm.offheap.lock;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Threads increment one plain off-heap word, each increment inside {@code guard.lock()} /
 * {@code guard.unlock()}. The increment is a plain load, a pause, and a plain store, so two
 * threads inside at once lose an update: the final count is the mutual-exclusion check.
 */
final class CounterHarness {
    /** The critical section's entry and exit. */
    interface Guard {
        void lock();

        void unlock();
    }

    /** No lock at all: the broken baseline. */
    static final Guard UNGUARDED = new Guard() {
        @Override
        public void lock() {
        }

        @Override
        public void unlock() {
        }
    };

    private CounterHarness() {
    }

    /** Runs {@code threads} x {@code iterations} guarded increments of {@code word[0]} and returns its final value. */
    static long run(int threads, int iterations, Guard guard, MemorySegment word) throws InterruptedException {
        word.set(ValueLayout.JAVA_LONG, 0, 0L);
        CyclicBarrier start = new CyclicBarrier(threads);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Thread> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            workers.add(new Thread(() -> {
                try {
                    start.await();
                    for (int i = 0; i < iterations; i++) {
                        guard.lock();
                        try {
                            long v = word.get(ValueLayout.JAVA_LONG, 0);
                            Thread.onSpinWait();
                            word.set(ValueLayout.JAVA_LONG, 0, v + 1);
                        } finally {
                            guard.unlock();
                        }
                    }
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                }
            }, "counter-" + t));
        }
        workers.forEach(Thread::start);
        for (Thread w : workers) {
            w.join();
        }
        if (failure.get() != null) {
            throw new AssertionError("a worker failed", failure.get());
        }
        return word.get(ValueLayout.JAVA_LONG, 0);
    }
}
