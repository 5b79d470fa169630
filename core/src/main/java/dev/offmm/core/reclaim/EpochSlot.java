package dev.offmm.core.reclaim;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * One participant of the grace-period protocol: a thread context that may hold translations or
 * walk tables without locks. It publishes the TLB generation it has caught up with, or
 * {@link #IDLE} when it holds no translation at all.
 *
 * <p>Assumptions: only the owner writes {@code observed}. Guarantees: once {@code observed >= g}
 * (or IDLE) is visible, the owner uses no translation or table pointer obtained before
 * generation {@code g}. Progress: wait-free for the owner.
 */
public final class EpochSlot {
    /** The slot's owner holds no translation. */
    public static final long IDLE = Long.MAX_VALUE;
    private static final VarHandle OBSERVED;

    static {
        try {
            OBSERVED = MethodHandles.lookup().findVarHandle(EpochSlot.class, "observed", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    @SuppressWarnings("unused")
    private volatile long observed = IDLE;
    volatile boolean retired;
    /** The owning thread; a dead owner holds nothing. */
    final Thread owner;

    EpochSlot(Thread owner) {
        this.owner = owner;
    }

    /**
     * Publishes that the owner has caught up with generation {@code gen}: a volatile store, so
     * the following load of the current generation cannot be reordered before it (the
     * store-load pairing with {@link Reclaimer#poll()}'s bump-then-scan).
     */
    public void observeVolatile(long gen) {
        OBSERVED.setVolatile(this, gen);
    }

    /** Publishes that the owner holds nothing (release: its last uses come before). */
    public void idleRelease() {
        OBSERVED.setRelease(this, IDLE);
    }

    /** The last published generation, or {@link #IDLE} (volatile load). */
    public long observedVolatile() {
        return (long) OBSERVED.getVolatile(this);
    }

    /** The generation this slot holds reclamation to: {@link #IDLE} if idle or its owner is dead. */
    long holding() {
        long v = observedVolatile();
        return v != IDLE && !owner.isAlive() ? IDLE : v;
    }
}
