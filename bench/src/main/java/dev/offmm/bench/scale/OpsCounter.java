package dev.offmm.bench.scale;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A thread's operation count, padded to its own cache lines. The owner increments it with an
 * opaque store (no fence: nothing else is published through it); the harness samples it with
 * opaque loads.
 */
final class OpsCounter {
    private static final VarHandle COUNT;

    static {
        try {
            COUNT = MethodHandles.lookup().findVarHandle(OpsCounter.class, "count", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    @SuppressWarnings("unused")
    private long p01;
    @SuppressWarnings("unused")
    private long p02;
    @SuppressWarnings("unused")
    private long p03;
    @SuppressWarnings("unused")
    private long p04;
    @SuppressWarnings("unused")
    private long p05;
    @SuppressWarnings("unused")
    private long p06;
    @SuppressWarnings("unused")
    private long p07;
    private long count;
    @SuppressWarnings("unused")
    private long p11;
    @SuppressWarnings("unused")
    private long p12;
    @SuppressWarnings("unused")
    private long p13;
    @SuppressWarnings("unused")
    private long p14;
    @SuppressWarnings("unused")
    private long p15;
    @SuppressWarnings("unused")
    private long p16;
    @SuppressWarnings("unused")
    private long p17;
    private int sink;

    /** Owner only. */
    void increment() {
        COUNT.setOpaque(this, count + 1);
    }

    /** Keeps a read from being optimised away. */
    void sink(byte b) {
        sink += b;
    }

    /** Any thread. */
    long get() {
        return (long) COUNT.getOpaque(this);
    }
}
