package dev.offmm.offheap.frame;

import dev.offmm.offheap.host.Backoff;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A per-thread stack of free order-0 frames (the kernel's per-cpu page list), with its own lock
 * so that another thread can drain it (since Linux 5.19 a pcp list has its own spinlock for the
 * same reason: {@code drain_all_pages} empties remote lists under memory pressure). The owner
 * takes the lock around each push or pop; it is uncontended except during a drain, and sits on
 * the cache's own cache line.
 *
 * <p>The lock is a test-and-set on {@code locked} (volatile CAS to take, release store to drop);
 * {@code count}, the array and {@code reaped} are read and written under it.
 * {@link #countAcquire()} is for statistics, racy by design. Outside this package a cache is only
 * a token: the home that frames released on a thread's behalf go back to.
 */
public final class FrameCache {
    private static final VarHandle LOCKED;
    private static final VarHandle COUNT;

    static {
        try {
            MethodHandles.Lookup l = MethodHandles.lookup();
            LOCKED = l.findVarHandle(FrameCache.class, "locked", int.class);
            COUNT = l.findVarHandle(FrameCache.class, "count", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    final Thread owner;
    final long[] pfns;
    /** The owner's refill batch, filled and zeroed outside the lock; owner thread only. */
    final long[] refill;
    /** 0 free, 1 held; CAS to take (acquire), release store to drop. */
    @SuppressWarnings("unused")
    private int locked;
    /** Written under the lock with release stores; read under it, or racily by statistics (acquire). */
    private int count;
    /** Set under the lock once the cache's dead owner is forgotten: frames must go elsewhere. */
    boolean reaped;
    /** Acquisitions of the lock so far: the cache's activity, which the page reporter watches. */
    private long uses;
    /** The page reporter's: {@code uses} at its last look, and passes since it last changed. */
    long reporterSeen;
    int idlePasses;

    FrameCache(Thread owner, int capacity, int batch) {
        this.owner = owner;
        this.pfns = new long[capacity];
        this.refill = new long[batch];
    }

    /** Takes the lock if it is free: one CAS, no waiting (the kernel's {@code pcp_spin_trylock}). */
    boolean tryLock() {
        if ((boolean) LOCKED.compareAndSet(this, 0, 1)) {
            uses++;
            return true;
        }
        return false;
    }

    /** Takes the lock: one CAS when uncontended, else spin, yield, park ({@link Backoff}). */
    void lock() {
        lockUncounted();
        uses++;
    }

    /**
     * {@link #lock()} without counting a use: for a reader that only looks at the count, which
     * must not make an idle cache look busy to the page reporter.
     */
    void lockUncounted() {
        if (!(boolean) LOCKED.compareAndSet(this, 0, 1)) {
            int attempt = 0;
            do {
                attempt = Backoff.idle(attempt);
            } while ((int) LOCKED.getOpaque(this) != 0 || !(boolean) LOCKED.compareAndSet(this, 0, 1));
        }
    }

    /** Acquisitions so far, under the lock (plain). */
    long usesPlain() {
        return uses;
    }

    /** Drops the lock: a release store, so the next holder sees the stack as it was left. */
    void unlock() {
        LOCKED.setRelease(this, 0);
    }

    /** The count, under the lock (plain). */
    int countPlain() {
        return count;
    }

    /** Another thread's racy view, for statistics: pairs with the release in {@link #setCountRelease}. */
    int countAcquire() {
        return (int) COUNT.getAcquire(this);
    }

    /** Sets the count, under the lock; the release store pairs with {@link #countAcquire}. */
    void setCountRelease(int n) {
        COUNT.setRelease(this, n);
    }
}
