package dev.offmm.core.reclaim;

import dev.offmm.offheap.host.Membarrier;

import java.lang.invoke.VarHandle;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.locks.LockSupport;

/**
 * Grace periods for what an unmap retires (the kernel's {@code MMU_GATHER_RCU_TABLE_FREE} and
 * the TLB-flush-before-free rule), in the manner of userspace RCU's {@code urcu-memb} flavour:
 * readers mark only the accesses they are inside, updaters pay for the barrier.
 *
 * <p>An unmap clears entries, bumps the TLB generation to {@code g}, and {@linkplain #retire
 * retires} a {@link Batch} tagged {@code g}. Before it scans, a {@linkplain #poll() poll} makes
 * every running thread execute a full barrier ({@link Membarrier#fence()}); then a batch is
 * released once no registered {@link EpochSlot} shows an access that started before {@code g}.
 * A context that is not inside an access shows {@link EpochSlot#IDLE} and never holds a grace
 * period back: its next access compares the generation first and drops its stale translations.
 * Where the host has no membarrier, readers fence after they publish instead ({@link #READERS_FENCE}).
 *
 * <p>Contexts register once per thread and address space. Slots of contexts that closed, and of
 * threads that died, are reused by later registrations; the slot array is compacted when most of
 * it is free, so a scan costs the number of contexts alive, not the number that ever were.
 *
 * <p>Batches are released in generation order by whichever thread polls: the retiring thread
 * after each retire, allocators under memory pressure, and {@code close}.
 */
public final class Reclaimer {
    /**
     * Whether readers must execute a full fence after publishing their access: true when the host
     * has no usable {@code membarrier} (or {@code -Doffmm.membarrier=false}). A constant, so the
     * JIT drops the branch from the access path.
     */
    public static final boolean READERS_FENCE = !Membarrier.AVAILABLE;

    /** Something retired by an unmap, freed after its grace period. */
    public interface Batch {
        /** Frames the batch holds; counted as pending until {@link #release()} returns. */
        int frames();

        /** Frees the batch. Called exactly once, after its grace period, by any thread. */
        void release();
    }

    /** A retired batch, with its place in the retire order. */
    private record Pending(long gen, long seq, Batch batch) {
    }

    /** Guards the slot registry: {@link #slots} (republished on change), {@link #free}, {@link #live}. */
    private final Object registry = new Object();
    /** Every slot, free ones included; a new array is published with a volatile store on growth or compaction. */
    private volatile EpochSlot[] slots = new EpochSlot[0];
    private int[] free = new int[8];
    private int freeCount;
    private int live;
    /** Guarded by itself. */
    private final ArrayDeque<Pending> pending = new ArrayDeque<>();
    /** The last retire's sequence number; guarded by {@code pending}. */
    private long retired;
    /** Written under the {@code pending} monitor; read with volatile loads by anyone. */
    private volatile long pendingFrames;
    /** Frames released so far, ever (monotonic); written under {@code pending}, read volatile. */
    private volatile long releasedFrames;
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

    // ---- the registry

    /** Registers a participant owned by the calling thread, outside any access. O(1) amortised. */
    public EpochSlot register() {
        Thread me = Thread.currentThread();
        synchronized (registry) {
            if (freeCount == 0) {
                reapDeadLocked();
            }
            EpochSlot slot;
            if (freeCount > 0) {
                slot = slots[free[--freeCount]];
            } else {
                EpochSlot[] a = slots;
                EpochSlot[] grown = Arrays.copyOf(a, Math.max(4, a.length * 2));
                for (int i = a.length; i < grown.length; i++) {
                    grown[i] = new EpochSlot(i);
                    pushFreeLocked(i);
                }
                slots = grown;
                slot = grown[free[--freeCount]];
            }
            slot.exitRelease();
            slot.owner = me;
            live++;
            return slot;
        }
    }

    /** Unregisters a participant (its owner has left every access); the slot may be reused at once. */
    public void unregister(EpochSlot slot) {
        synchronized (registry) {
            if (slot.owner != null && slot.index >= 0 && slots[slot.index] == slot) {
                releaseLocked(slot);
            }
        }
    }

    /** The length of the slot array, free slots included: what a scan costs (racy). */
    public int slotCapacity() {
        return slots.length;
    }

    /** Contexts registered and alive (racy). */
    public int participants() {
        int n = 0;
        for (EpochSlot s : slots) {
            Thread t = s.owner;
            n += t != null && t.isAlive() ? 1 : 0;
        }
        return n;
    }

    private void releaseLocked(EpochSlot slot) {
        slot.exitRelease();
        slot.owner = null;
        live--;
        pushFreeLocked(slot.index);
        EpochSlot[] a = slots;
        if (a.length > 64 && live < a.length / 4) {
            compactLocked(a);
        }
    }

    private void pushFreeLocked(int index) {
        if (freeCount == free.length) {
            free = Arrays.copyOf(free, free.length * 2);
        }
        free[freeCount++] = index;
    }

    /** Frees the slots of threads that have terminated ({@code isAlive() == false} orders their last writes first). */
    private void reapDeadLocked() {
        for (EpochSlot s : slots) {
            Thread t = s.owner;
            if (t != null && !t.isAlive()) {
                releaseLocked(s);
            }
        }
    }

    /** Rebuilds the array with only the slots in use, so scans stop paying for the dead. */
    private void compactLocked(EpochSlot[] a) {
        List<EpochSlot> used = new ArrayList<>(live);
        for (EpochSlot s : a) {
            if (s.owner != null) {
                used.add(s);
            }
        }
        EpochSlot[] packed = new EpochSlot[Math.max(4, Integer.highestOneBit(Math.max(1, used.size())) * 2)];
        freeCount = 0;
        for (int i = 0; i < packed.length; i++) {
            packed[i] = i < used.size() ? used.get(i) : new EpochSlot(i);
            packed[i].index = i;
        }
        for (int i = packed.length - 1; i >= used.size(); i--) {
            pushFreeLocked(i);
        }
        slots = packed;
    }

    // ---- grace periods

    /**
     * Retires {@code batch}, whose entries were cleared before the TLB generation became
     * {@code gen}, then releases whatever is safe (possibly {@code batch} itself).
     */
    public void retire(long gen, Batch batch) {
        int n = batch.frames();
        if (n > 0) {
            synchronized (pending) {
                pending.addLast(new Pending(gen, ++retired, batch));
                pendingFrames += n;
            }
        }
        poll();
    }

    /**
     * The oldest generation an access in progress may still be using, or {@link EpochSlot#IDLE}.
     * Issues the barrier first: a context whose publication the scan misses has not yet loaded
     * the generation, and will see the bump that preceded this call.
     */
    public long minActive() {
        if (graceDisabled) {
            return EpochSlot.IDLE;
        }
        EpochSlot[] a = slots;
        // Only other threads' accesses can be out of order with this scan: with none registered
        // (a single-threaded user) a fence is enough, and it pairs with readers' own fences.
        return scan(a, !READERS_FENCE && hasForeignOwner(a));
    }

    /**
     * {@link #minActive()} with the process-wide barrier whatever the registrations, for the
     * ordering test whose reader writes a slot from a thread that does not own it.
     */
    public long minActiveAfterBarrier() {
        return scan(slots, !READERS_FENCE);
    }

    private long scan(EpochSlot[] a, boolean membarrier) {
        if (membarrier) {
            Membarrier.fence();
        } else {
            VarHandle.fullFence();
        }
        long min = EpochSlot.IDLE;
        boolean dead = false;
        for (EpochSlot s : a) {
            Thread t = s.owner;
            if (t == null) {
                continue;
            }
            if (!t.isAlive()) {
                dead = true;
                continue;
            }
            min = Math.min(min, s.activeVolatile());
        }
        if (dead) {
            synchronized (registry) {
                reapDeadLocked();
            }
        }
        return min;
    }

    private static boolean hasForeignOwner(EpochSlot[] a) {
        Thread me = Thread.currentThread();
        for (EpochSlot s : a) {
            Thread t = s.owner;
            if (t != null && t != me) {
                return true;
            }
        }
        return false;
    }

    /**
     * Releases every batch whose grace period has passed. Returns how many frames went back.
     *
     * <p>A scan covers only the batches retired before it began: a batch retired later may have
     * been cleared after the barrier, by an unmap racing an access this scan saw as idle. So the
     * last retire's number is read first, and the release stops there.
     */
    public long poll() {
        if (pendingFrames == 0) {
            return 0;
        }
        long covered;
        synchronized (pending) {
            covered = retired;
        }
        long safe = minActive();
        long freed = 0;
        while (true) {
            Pending p;
            synchronized (pending) {
                p = pending.peekFirst();
                if (p == null || p.seq > covered || p.gen > safe) {
                    break;
                }
                pending.pollFirst();
            }
            int n = p.batch.frames();
            try {
                p.batch.release();
            } finally {
                synchronized (pending) {
                    // Only now are the frames free: a thread under pressure that saw them pending
                    // keeps waiting until here instead of failing while they are being released.
                    pendingFrames -= n;
                    releasedFrames += n;
                }
            }
            freed += n;
        }
        return freed;
    }

    /** Frames released so far (monotonic): sampled before an allocation, to see a release it missed. */
    public long releasedFrames() {
        return releasedFrames;
    }

    /**
     * Waits up to {@code timeoutNanos} for pending batches to become releasable, releasing them.
     * Only accesses in progress can delay it. Returns whether nothing is pending any more.
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
     * Under memory pressure: releases what is safe and, if frames are still pending (held by an
     * access in progress, or being released by another thread right now), waits up to
     * {@code timeoutNanos} for some of them to come back. Returns whether an allocation is worth
     * retrying: something was released since {@code releasedBefore} (a {@link #releasedFrames()}
     * sampled before the allocation that failed), by this call or by another thread meanwhile.
     */
    public boolean reclaimUnderPressure(long releasedBefore, long timeoutNanos) {
        if (poll() > 0 || releasedFrames != releasedBefore) {
            return true;
        }
        if (pendingFrames == 0) {
            return false;
        }
        long deadline = System.nanoTime() + timeoutNanos;
        long park = 1_000;
        while (System.nanoTime() - deadline < 0) {
            LockSupport.parkNanos(park);
            park = Math.min(park * 2, 256_000);
            if (poll() > 0 || releasedFrames != releasedBefore) {
                return true;
            }
        }
        return false;
    }

    /** Frames waiting for a grace period. */
    public long pendingFrames() {
        return pendingFrames;
    }

    /**
     * The threads whose access in progress holds the oldest pending batch back, for a leak report
     * (empty if none does: the batch may be being released right now).
     */
    public List<String> holders() {
        long oldest;
        synchronized (pending) {
            Pending p = pending.peekFirst();
            if (p == null) {
                return List.of();
            }
            oldest = p.gen;
        }
        List<String> names = new ArrayList<>();
        for (EpochSlot s : slots) {
            Thread t = s.owner;
            if (t != null && t.isAlive() && s.activeVolatile() < oldest) {
                names.add("'" + t.getName() + "'");
            }
        }
        return names;
    }
}
