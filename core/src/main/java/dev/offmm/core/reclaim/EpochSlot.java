package dev.offmm.core.reclaim;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * One participant of the grace-period protocol: a thread context that may hold translations or
 * walk tables without locks. While its owner is inside an access it publishes the TLB generation
 * that access validated its translations against; outside an access it publishes {@link #IDLE}
 * and holds nothing back, whatever its thread is doing (parked, blocked, computing).
 *
 * <p>Assumptions: only the owner calls {@link #enterOpaque} and {@link #exitRelease}, and its
 * accesses happen between the two. Guarantees: an updater that bumped the generation to
 * {@code g}, then made every running thread execute a full barrier ({@code membarrier}, or the
 * reader's own fence), then reads {@code active >= g} or {@link #IDLE}, knows that the owner uses
 * no translation or table pointer obtained before {@code g}. Progress: wait-free for the owner.
 *
 * <p>The published word sits alone on its cache lines (padding on both sides), so the owner's
 * stores never share a line with another context's.
 */
public final class EpochSlot extends EpochSlotFields {
    /**
     * Not inside an access. An updater that reads it cannot tell a context that is between
     * accesses from one whose next access's publication is still in its CPU's store buffer: only
     * a process-wide barrier after the updater's bump settles it.
     */
    public static final long IDLE = Long.MAX_VALUE;
    /**
     * Not inside an access, and the next access fences after it publishes
     * ({@link #quiesceRelease}): an updater that reads it needs no barrier for this context. A
     * context publishes it for the slow paths (a fault, an mmap/munmap/madvise call), where one
     * fence costs nothing against the work. Larger than every generation, like {@link #IDLE}.
     */
    public static final long QUIESCENT = Long.MAX_VALUE - 1;
    private static final VarHandle ACTIVE;

    static {
        try {
            ACTIVE = MethodHandles.lookup().findVarHandle(EpochSlotValue.class, "active", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    EpochSlot(int index) {
        this.index = index;
        ACTIVE.setRelease(this, IDLE);
    }

    /**
     * Enters an access validated against generation {@code gen}: an opaque store. The owner then
     * loads the current generation (acquire) and compares. HotSpot keeps the two in program order:
     * C2 brackets every ordered (opaque or stronger) VarHandle access with compiler-only
     * {@code MemBarCPUOrder} barriers, and C1 and the interpreter do not reorder memory accesses.
     * The processor may still let the load pass the store; the updater's {@code membarrier} (or,
     * without it, a {@link VarHandle#fullFence()} right after this store) closes that window.
     */
    public void enterOpaque(long gen) {
        ACTIVE.setOpaque(this, gen);
    }

    /** Leaves the access (release: every load and store of the access comes before). */
    public void exitRelease() {
        ACTIVE.setRelease(this, IDLE);
    }

    /**
     * Leaves the access, or stays out, promising that the next {@link #enterOpaque} is followed
     * by a full fence before its generation load (release store). With that fence, an updater
     * that bumped, fenced and then reads QUIESCENT knows the owner's next access loads the bumped
     * generation (Dekker: one of the two sees the other's store).
     */
    public void quiesceRelease() {
        ACTIVE.setRelease(this, QUIESCENT);
    }

    /** The published generation, or {@link #IDLE} (volatile load, for updaters after their barrier). */
    public long activeVolatile() {
        return (long) ACTIVE.getVolatile(this);
    }

    /** The thread that owns this slot now, or null if the slot is free (volatile load). */
    public Thread owner() {
        return owner;
    }

    /** A slot that belongs to no reclaimer, for a context that is closed: its stores go nowhere. */
    public static EpochSlot detached() {
        return new EpochSlot(-1);
    }
}

/** Padding before the published word: a cache line and more, so no other object's field shares it. */
abstract class EpochSlotPadBefore {
    long p00;
    long p01;
    long p02;
    long p03;
    long p04;
    long p05;
    long p06;
    long p07;
    long p08;
    long p09;
    long p10;
    long p11;
    long p12;
    long p13;
    long p14;
    long p15;
}

/** The published word. */
abstract class EpochSlotValue extends EpochSlotPadBefore {
    /** The generation of the access in progress, or IDLE; accessed only through EpochSlot's VarHandle. */
    long active;
}

/** Padding after the published word, then the fields the registry writes (rarely). */
abstract class EpochSlotFields extends EpochSlotValue {
    long q00;
    long q01;
    long q02;
    long q03;
    long q04;
    long q05;
    long q06;
    long q07;
    long q08;
    long q09;
    long q10;
    long q11;
    long q12;
    long q13;
    long q14;
    long q15;
    /** The owning thread, null while the slot is free; written under the registry's lock. */
    volatile Thread owner;
    /** The slot's index in the registry's array; written under the registry's lock. */
    int index;
}
