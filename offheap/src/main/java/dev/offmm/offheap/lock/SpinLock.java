package dev.offmm.offheap.lock;

import dev.offmm.offheap.host.Backoff;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * A test-and-test-and-set spinlock on one 8-byte word of a segment: 0 is unlocked, any other
 * value is the holder's token. Acquire is a volatile CAS, release a release store; the two pair
 * so that the holder's writes are visible to the next holder.
 */
public final class SpinLock {
    static final VarHandle WORD = ValueLayout.JAVA_LONG.varHandle().withInvokeExactBehavior();

    private SpinLock() {
    }

    /**
     * Takes the lock at {@code offset} of {@code segment}, storing {@code token} (non-zero).
     * Returns {@code true} if it had to wait (the acquisition was contended).
     */
    public static boolean lock(MemorySegment segment, long offset, long token) {
        if ((boolean) WORD.compareAndSet(segment, offset, 0L, token)) {
            return false;
        }
        lockSlowPath(segment, offset, token);
        return true;
    }

    private static void lockSlowPath(MemorySegment segment, long offset, long token) {
        int attempt = 0;
        while (true) {
            // Test before test-and-set: spin on a shared line rather than bouncing it with CASes.
            if ((long) WORD.getOpaque(segment, offset) == 0L
                    && (boolean) WORD.compareAndSet(segment, offset, 0L, token)) {
                return;
            }
            attempt = Backoff.idle(attempt);
        }
    }

    /** One attempt; {@code true} if the lock was taken. */
    public static boolean tryLock(MemorySegment segment, long offset, long token) {
        return (boolean) WORD.compareAndSet(segment, offset, 0L, token);
    }

    /** Releases the lock: a release store of 0, pairing with the next holder's CAS. */
    public static void unlock(MemorySegment segment, long offset) {
        WORD.setRelease(segment, offset, 0L);
    }

    /** The holder's token, or 0 (acquire load). */
    public static long holder(MemorySegment segment, long offset) {
        return (long) WORD.getAcquire(segment, offset);
    }
}
