package dev.offmm.offheap.frame;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A per-thread stack of free order-0 frames (the kernel's per-cpu page list). Only the owner
 * thread pushes and pops; other threads read {@link #countAcquire()} for statistics, and drain the
 * cache only once the owner is dead ({@link Thread#isAlive()} returning false orders the
 * owner's last writes before the drain).
 */
final class FrameCache {
    private static final VarHandle COUNT;

    static {
        try {
            COUNT = MethodHandles.lookup().findVarHandle(FrameCache.class, "count", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    final Thread owner;
    final long[] pfns;
    /** Written by the owner with release stores; read by statistics with acquire loads. */
    private int count;

    FrameCache(Thread owner, int capacity) {
        this.owner = owner;
        this.pfns = new long[capacity];
    }

    /** The owner's view: a plain load. */
    int countPlain() {
        return count;
    }

    /** Another thread's view: pairs with the release in {@link #setCountRelease}. */
    int countAcquire() {
        return (int) COUNT.getAcquire(this);
    }

    /** The owner's update; pairs with {@link #countAcquire}. */
    void setCountRelease(int n) {
        COUNT.setRelease(this, n);
    }
}
