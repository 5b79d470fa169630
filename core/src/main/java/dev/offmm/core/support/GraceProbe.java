package dev.offmm.core.support;

import dev.offmm.core.reclaim.EpochSlot;
import dev.offmm.core.reclaim.Reclaimer;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * The two sides of the grace-period handshake, for the jcstress test of its ordering: a reader
 * entering an access ({@code TlbContext.enter}: an opaque store of its generation into its slot,
 * then an acquire load of the address space's generation) and an updater that bumps the
 * generation and scans ({@code Reclaimer.minActive}: {@code membarrier}, then volatile loads of
 * the slots). Forbidden together: the reader saw the old generation and the updater saw the
 * reader outside any access. {@link #brokenReaderEnter} and {@link #brokenUpdaterScan} drop the
 * barrier (and the reader's fence where there is no membarrier), which the control test shows.
 */
public final class GraceProbe {
    private static final VarHandle GEN;

    static {
        try {
            GEN = MethodHandles.lookup().findVarHandle(GraceProbe.class, "gen", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final Reclaimer reclaimer = new Reclaimer();
    private final EpochSlot slot = reclaimer.register();
    /** The generation; volatile RMW by the updater, acquire loads by the reader. */
    @SuppressWarnings("unused")
    private volatile long gen;

    /** A probe with one registered reader slot, outside any access, at generation 0. */
    public GraceProbe() {
        this(false);
    }

    /**
     * A probe whose reader slot shows {@link EpochSlot#QUIESCENT} ({@code quiescent}, as during a
     * fault or an mmap call) or IDLE, outside any access, at generation 0.
     */
    public GraceProbe(boolean quiescent) {
        if (quiescent) {
            slot.quiesceRelease();
        }
    }

    /** The reader: enters an access validated at generation 0; returns the generation it then loads. */
    public long readerEnter() {
        slot.enterOpaque(0);
        if (Reclaimer.READERS_FENCE) {
            VarHandle.fullFence();
        }
        return (long) GEN.getAcquire(this);
    }

    /** The updater: bumps the generation to 1, then returns the oldest access in progress, or IDLE. */
    public long updaterScan() {
        GEN.getAndAdd(this, 1L);
        return reclaimer.minActiveAfterBarrier();
    }

    /**
     * The reader's first access after {@link EpochSlot#quiesceRelease}: publishes generation 0,
     * fences ({@code TlbContext.resync}, which the quiesced generation sends it to), then loads the generation.
     */
    public long readerEnterAfterQuiesce() {
        slot.enterOpaque(0);
        VarHandle.fullFence();
        return (long) GEN.getAcquire(this);
    }

    /**
     * The updater's scan without a barrier of its own ({@code Reclaimer.settle} before it decides
     * on one): bump, fence, read the slot. Enough only for a slot that shows QUIESCENT.
     */
    public long updaterScanWithoutBarrier() {
        GEN.getAndAdd(this, 1L);
        VarHandle.fullFence();
        return slot.activeVolatile();
    }

    /** The reader without its fence (only differs where the host has no membarrier). */
    public long brokenReaderEnter() {
        slot.enterOpaque(0);
        return (long) GEN.getAcquire(this);
    }

    /** The updater without the barrier: bump, then read the slot. */
    public long brokenUpdaterScan() {
        GEN.getAndAdd(this, 1L);
        return slot.activeVolatile();
    }

    /** Whether the updater saw no access in progress (IDLE or QUIESCENT). */
    public static boolean idle(long active) {
        return active == EpochSlot.IDLE || active == EpochSlot.QUIESCENT;
    }
}
