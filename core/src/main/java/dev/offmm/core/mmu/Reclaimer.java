package dev.offmm.core.mmu;

import dev.offmm.core.mm.LongList;
import dev.offmm.core.mm.Mm;

import java.util.ArrayDeque;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.locks.LockSupport;

/**
 * Grace periods for pages and tables freed by an mmu_gather (the kernel's
 * {@code MMU_GATHER_RCU_TABLE_FREE} and the TLB-flush-before-free rule, done epoch-style).
 *
 * <p>An mmu_gather clears entries, bumps the TLB generation to {@code g}, and retires its batch
 * tagged {@code g}. The batch is released (pages put, tables destroyed and freed) once every
 * registered {@link EpochSlot} has observed a generation {@code >= g} or is idle: no context can
 * then still translate through a cleared entry or hold a pointer into a freed table.
 *
 * <p>Batches are released in generation order by whichever thread calls {@link #poll()}: the
 * unmapping thread after each gather, and allocators under memory pressure.
 */
public final class Reclaimer {
    private final Mm mm;
    private final CopyOnWriteArrayList<EpochSlot> slots = new CopyOnWriteArrayList<>();
    private final ArrayDeque<Batch> pending = new ArrayDeque<>();
    private volatile long pendingFrames;
    private volatile boolean graceDisabled;

    private record Batch(long gen, LongList pages, LongList tables) {
    }

    /** The reclaimer of {@code mm}. */
    public Reclaimer(Mm mm) {
        this.mm = mm;
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

    /** Unregisters a participant; it must be idle. */
    public void unregister(EpochSlot slot) {
        slot.idle();
        slot.retired = true;
        slots.remove(slot);
        poll();
    }

    /** Participants registered now. */
    public int participants() {
        return slots.size();
    }

    /**
     * Retires pages ({@code pfn << 4 | order}) and tables ({@code pfn << 2 | level}) cleared
     * before the TLB generation became {@code gen}, then releases whatever is safe.
     */
    public void retire(long gen, LongList pages, LongList tables) {
        if (!pages.isEmpty() || !tables.isEmpty()) {
            synchronized (pending) {
                pending.addLast(new Batch(gen, pages, tables));
                pendingFrames += pages.size() + tables.size();
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
            Batch b;
            synchronized (pending) {
                b = pending.peekFirst();
                if (b == null || b.gen > safe) {
                    break;
                }
                pending.pollFirst();
            }
            freed += release(b);
            synchronized (pending) {
                // Only now are the frames free: a thread under pressure that saw them pending
                // keeps waiting until here instead of failing while they are being released.
                pendingFrames -= b.pages.size() + b.tables.size();
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

    private long release(Batch b) {
        for (int i = 0; i < b.pages.size(); i++) {
            long v = b.pages.get(i);
            mm.frames.putFrames(v >>> 4, (int) (v & 0xf));
        }
        mm.counters.framesHeld.add(-b.pages.size());
        mm.counters.pagesFreed.add(b.pages.size());
        mm.counters.gracePeriods.increment();
        for (int i = 0; i < b.tables.size(); i++) {
            long v = b.tables.get(i);
            mm.pgtables.freeTable(v >>> 2, (int) (v & 0x3));
        }
        return b.pages.size() + b.tables.size();
    }
}
