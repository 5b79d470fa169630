package dev.offmm.offheap.host;

import java.util.concurrent.locks.LockSupport;

/**
 * The waiting policy of a contended spin: spin with {@link Thread#onSpinWait()}, then yield, then
 * park with a doubling timeout (Agrona's {@code BackoffIdleStrategy}). Spinning alone collapses
 * when there are more threads than cores, because a waiter burns the slice the preempted holder
 * needs; yielding and parking give it back.
 */
public final class Backoff {
    static final int SPINS = 64;
    static final int YIELDS = 8;
    static final long MIN_PARK_NANOS = 1_000;
    static final long MAX_PARK_NANOS = 256_000;

    private Backoff() {
    }

    /**
     * Waits once, at step {@code attempt} (0, 1, 2, ...) of a contended acquisition, and returns
     * the next step.
     */
    public static int idle(int attempt) {
        if (attempt < SPINS) {
            Thread.onSpinWait();
        } else if (attempt < SPINS + YIELDS) {
            Thread.yield();
        } else {
            int shift = Math.min(attempt - SPINS - YIELDS, 8);
            LockSupport.parkNanos(Math.min(MIN_PARK_NANOS << shift, MAX_PARK_NANOS));
        }
        return attempt == Integer.MAX_VALUE ? attempt : attempt + 1;
    }
}
