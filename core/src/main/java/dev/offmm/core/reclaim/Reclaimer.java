package dev.offmm.core.reclaim;

import java.util.ArrayDeque;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.locks.LockSupport;

/**
 * Grace periods for what an unmap retires (the kernel's {@code MMU_GATHER_RCU_TABLE_FREE} and
 * the TLB-flush-before-free rule, done epoch-style, like userspace RCU's QSBR flavour).
 *
 * <p>An unmap clears entries, bumps the TLB generation to {@code g}, and {@linkplain #retire
 * retires} a {@link Batch} tagged {@code g}. The batch is released once every registered
 * {@link EpochSlot} has observed a generation {@code >= g} or is idle: no context can then still
 * translate through a cleared entry or hold a pointer into a freed table.
 *
 * <p>Batches are released in generation order by whichever thread calls {@link #poll()}: the
 * retiring thread after each retire, contexts going idle, and allocators under memory pressure.
 */
public final class Reclaimer {
    /** Something retired by an unmap, freed after its grace period. */
    public interface Batch {
        /** Frames the batch holds; counted as pending until {@link #release()} returns. */
        int frames();

        /** Frees the batch. Called exactly once, after its grace period, by any thread. */
        void release();
    }

    private record Pending(long gen, Batch batch) {
    }

    private final CopyOnWriteArrayList<EpochSlot> slots = new CopyOnWriteArrayList<>();
    /** Guarded by itself. */
    private final ArrayDeque<Pending> pending = new ArrayDeque<>();
    /** Written under the {@code pending} monitor; read with volatile loads by anyone. */
    private volatile long pendingFrames;
    private volatile boolean graceDisabled;

    /** An empty reclaimer. */
    public Reclaimer() {
    }

    /**
     * Fault injection for tests: releases batches at once, ignoring every participant. This is
     * the bug the grace period prevents; the stress tests show that they catch it.
     */
    public void disableGracePeriodForTesting() {
        graceDisabled = true;
    }

    /** Registers a participant owned by the calling thread; it starts idle. */
    public EpochSlot register() {
        EpochSlot slot = new EpochSlot(Thread.currentThread());
        slots.add(slot);
        return slot;
    }

    /** Unregisters a participant and releases what it may have held back. */
    public void unregister(EpochSlot slot) {
        slot.idleRelease();
        slot.retired = true;
        slots.remove(slot);
        poll();
    }

    /**
     * Retires {@code batch}, whose entries were cleared before the TLB generation became
     * {@code gen}, then releases whatever is safe (possibly {@code batch} itself).
     */
    public void retire(long gen, Batch batch) {
        int n = batch.frames();
        if (n > 0) {
            synchronized (pending) {
                pending.addLast(new Pending(gen, batch));
                pendingFrames += n;
            }
        }
        poll();
    }

    /** The oldest generation some participant may still be using, or {@link EpochSlot#IDLE}. */
    public long minObserved() {
        if (graceDisabled) {
            return EpochSlot.IDLE;
        }
        long min = EpochSlot.IDLE;
        for (EpochSlot s : slots) {
            min = Math.min(min, s.holding());
        }
        return min;
    }

    /** Releases every batch whose grace period has passed. Returns how many frames went back. */
    public long poll() {
        long safe = minObserved();
        long freed = 0;
        while (true) {
            Pending p;
            synchronized (pending) {
                p = pending.peekFirst();
                if (p == null || p.gen > safe) {
                    break;
                }
                pending.pollFirst();
            }
            int n = p.batch.frames();
            p.batch.release();
            freed += n;
            synchronized (pending) {
                // Only now are the frames free: a thread under pressure that saw them pending
                // keeps waiting until here instead of failing while they are being released.
                pendingFrames -= n;
            }
        }
        return freed;
    }

    /**
     * Waits up to {@code timeoutNanos} for pending batches to become releasable, releasing them.
     * Returns whether nothing is pending any more.
     */
    public boolean awaitQuiescent(long timeoutNanos) {
        long deadline = System.nanoTime() + timeoutNanos;
        long park = 1_000;
        while (true) {
            poll();
            if (pendingFrames == 0) {
                return true;
            }
            if (System.nanoTime() - deadline >= 0) {
                return false;
            }
            LockSupport.parkNanos(park);
            park = Math.min(park * 2, 1_000_000);
        }
    }

    /**
     * Under memory pressure: releases what is safe and, if frames are still pending (waiting for
     * a grace period, or being released by another thread right now), waits up to
     * {@code timeoutNanos} for some of them to come back. Returns whether an allocation is worth
     * retrying.
     */
    public boolean reclaimUnderPressure(long timeoutNanos) {
        long before = pendingFrames;
        if (poll() > 0) {
            return true;
        }
        if (before == 0) {
            return false;
        }
        long deadline = System.nanoTime() + timeoutNanos;
        long park = 1_000;
        while (System.nanoTime() - deadline < 0) {
            LockSupport.parkNanos(park);
            park = Math.min(park * 2, 256_000);
            if (poll() > 0 || pendingFrames < before) {
                return true;
            }
        }
        return false;
    }

    /** Frames waiting for a grace period. */
    public long pendingFrames() {
        return pendingFrames;
    }
}
