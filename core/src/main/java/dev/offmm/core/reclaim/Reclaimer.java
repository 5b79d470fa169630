package dev.offmm.core.reclaim;

import dev.offmm.offheap.host.Membarrier;

import java.lang.invoke.VarHandle;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.locks.LockSupport;
import java.util.function.LongSupplier;

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
 * <p>Contexts register once per thread and address space ({@link SlotRegistry}: slots are reused
 * and compacted, so a scan costs the number of contexts alive, not the number that ever were).
 *
 * <p>Batches are released by the thread that retired them, as it polls after each retire (so
 * their frames come back zeroed into the cache of the CPU that will fault them in again); by any
 * polling thread once they are {@link #FOREIGN_AFTER_RETIRES} retires old or their retirer died;
 * and all at once by allocators under memory pressure and by {@code close}.
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

    /** A retired batch, with its place in the retire order and the thread that retired it. */
    private record Pending(long gen, long seq, Batch batch, Thread retirer) {
    }

    /**
     * Retires after which a batch is released by whichever thread polls, not only by its own
     * retirer: a thread that retired and then stopped retiring (parked, say) holds its frames
     * back for at most this many retires of others (memory pressure and close take them at once).
     */
    static final int FOREIGN_AFTER_RETIRES = 16;

    /**
     * Frames of its own a thread lets wait before its poll pays for the process-wide barrier
     * itself, when barriers are frequent (the last one less than {@link #BARRIER_INTERVAL_NANOS}
     * ago). Meanwhile a poll releases only what a barrier already issued, by any thread, covers:
     * grace periods are batched the way RCU batches callbacks, since one {@code membarrier} costs
     * an IPI to every other running thread (tens of microseconds in a VM) whatever it covers.
     * Unmaps of 1 MiB and more, and rare unmaps of any size, still release at once.
     */
    static final int BARRIER_AFTER_FRAMES = 256;
    /** Re-scans, a pause apart, while an access older than the newest batch is in progress. */
    static final int RESCAN_SPINS = 64;
    /** A poll issues the barrier whatever it holds if none was issued for this long. */
    static final long BARRIER_INTERVAL_NANOS = 1_000_000L;

    private final SlotRegistry registry = new SlotRegistry();
    /** Guarded by itself. */
    private final ArrayDeque<Pending> pending = new ArrayDeque<>();
    /** The last retire's sequence number; guarded by {@code pending}. */
    private long retired;
    /** The largest generation retired so far; guarded by {@code pending}. */
    private long maxRetiredGen;
    /** Pending and released frame counts, padded: read by every allocation. */
    private final ReclaimCounts counts = new ReclaimCounts();
    private volatile boolean graceDisabled;

    /** Nanosecond time, for {@link #BARRIER_INTERVAL_NANOS}. */
    private final LongSupplier clock;

    /** An empty reclaimer. */
    public Reclaimer() {
        this(System::nanoTime);
    }

    /** An empty reclaimer on {@code clock}, which tests control. */
    Reclaimer(LongSupplier clock) {
        this.clock = clock;
        counts.lastBarrierNanos = clock.getAsLong() - BARRIER_INTERVAL_NANOS;
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
        return registry.register();
    }

    /** Unregisters a participant (its owner has left every access); the slot may be reused at once. */
    public void unregister(EpochSlot slot) {
        registry.unregister(slot);
    }

    /** The length of the slot array, free slots included: what a scan costs (racy). */
    public int slotCapacity() {
        return registry.slots().length;
    }

    /** Contexts registered and alive (racy). */
    public int participants() {
        return registry.participants();
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
                pending.addLast(new Pending(gen, ++retired, batch, Thread.currentThread()));
                maxRetiredGen = Math.max(maxRetiredGen, gen);
                counts.pendingFrames += n;
            }
        }
        poll(false);
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
        EpochSlot[] a = registry.slots();
        // Only other threads' accesses can be out of order with this scan: with none registered
        // (a single-threaded user) a fence is enough, and it pairs with readers' own fences.
        return scan(a, !READERS_FENCE && SlotRegistry.hasForeignOwner(a));
    }

    /**
     * {@link #minActive()} with the process-wide barrier whatever the registrations, for the
     * ordering test whose reader writes a slot from a thread that does not own it.
     */
    public long minActiveAfterBarrier() {
        return scan(registry.slots(), !READERS_FENCE);
    }

    private long scan(EpochSlot[] a, boolean membarrier) {
        if (membarrier) {
            Membarrier.fence();
        } else {
            VarHandle.fullFence();
        }
        return minOf(a);
    }

    /** The smallest generation the live slots of {@code a} publish (volatile loads), after a barrier. */
    private long minOf(EpochSlot[] a) {
        return registry.minPublished(a, null, EpochSlot.IDLE);
    }

    /**
     * Scans (after a fence) until nothing older than {@code maxGen} shows, for at most
     * {@link #RESCAN_SPINS} pauses: an access that began before the last bump usually ends within
     * nanoseconds, and waiting a few microseconds beats leaving the batch (and the cache it
     * refills) for the next retire. {@code barrier}: this poll issued a barrier after every bump
     * up to {@code maxGen}, so IDLE is definite, now and in every later look (the reader's later
     * accesses all began after the barrier's fence on its CPU, so they loaded the bumped
     * generation); without one, IDLE counts as the coverage of the last completed barrier, read
     * (volatile) before each look.
     */
    private long settle(EpochSlot[] a, Thread me, long maxGen, boolean barrier) {
        long safe = Long.MIN_VALUE;
        for (int spin = 0; spin <= RESCAN_SPINS && safe < maxGen; spin++) {
            if (spin > 0) {
                Thread.onSpinWait();
            }
            long idle = barrier || READERS_FENCE ? EpochSlot.IDLE : counts.barrierCovers;
            VarHandle.fullFence();
            safe = registry.minPublished(a, me, idle);
        }
        return safe;
    }


    /**
     * Releases every batch whose grace period has passed. Returns how many frames went back.
     *
     * <p>A scan covers only the batches retired before it began: a batch retired later may have
     * been cleared after the barrier, by an unmap racing an access this scan saw as idle. So the
     * last retire's number is read first, and the release stops there.
     */
    public long poll() {
        return poll(true);
    }

    /**
     * {@link #poll()}; unless {@code all}, only the batches this thread retired, and others' once
     * {@link #FOREIGN_AFTER_RETIRES} retires old or left by a dead thread. A batch's frames are
     * zeroed and cached as it is released, so the thread that retired it (and will fault them
     * back in) should be the one that touches them: another thread's release would pull every
     * line of them, data and struct pages, into the wrong CPU's caches.
     */
    private long poll(boolean all) {
        if (counts.pendingFrames == 0) {
            return 0;
        }
        Thread me = Thread.currentThread();
        long covered;
        long maxGen;
        long mine = 0;
        synchronized (pending) {
            covered = retired;
            maxGen = maxRetiredGen;
            if (!all) {
                for (Pending p : pending) {
                    mine += p.retirer == me ? p.batch.frames() : 0;
                }
            }
        }
        EpochSlot[] a = registry.slots();
        long safe;
        if (graceDisabled) {
            safe = EpochSlot.IDLE;
        } else if (READERS_FENCE || !SlotRegistry.hasForeignOwner(a)) {
            // Only other threads' accesses can be out of order with this scan: with none
            // registered (a single-threaded user) a fence is enough, as with readers' own fences
            // (a context registered since starts with a fenced access).
            safe = settle(a, me, maxGen, true);
        } else {
            // First without a barrier of its own: QUIESCENT slots and generations are definite,
            // an IDLE one holds back what no completed barrier covers.
            safe = settle(a, me, maxGen, false);
            if (safe < maxGen && (all || mine >= BARRIER_AFTER_FRAMES
                    || clock.getAsLong() - counts.lastBarrierNanos >= BARRIER_INTERVAL_NANOS)) {
                // Every batch retired so far had its bump before this barrier began.
                Membarrier.fence();
                synchronized (pending) {
                    counts.barrierCovers = Math.max(counts.barrierCovers, maxGen);
                    counts.lastBarrierNanos = clock.getAsLong();
                }
                safe = settle(a, me, maxGen, true);
            }
        }
        List<Pending> ready = null;
        synchronized (pending) {
            for (Iterator<Pending> it = pending.iterator(); it.hasNext();) {
                Pending p = it.next();
                // Generations are not in retire order (a bump and its retire are not atomic), and
                // a failed release puts batches back at the front: each batch is judged alone.
                if (p.seq > covered || p.gen > safe) {
                    continue;
                }
                if (all || p.retirer == me || p.seq <= covered - FOREIGN_AFTER_RETIRES || !p.retirer.isAlive()) {
                    it.remove();
                    if (ready == null) {
                        ready = new ArrayList<>(4);
                    }
                    ready.add(p);
                }
            }
        }
        if (ready == null) {
            return 0;
        }
        long freed = 0;
        for (int i = 0; i < ready.size(); i++) {
            Pending p = ready.get(i);
            int n = p.batch.frames();
            try {
                p.batch.release();
            } catch (RuntimeException | Error e) {
                // The batches not yet released go back, so that none is lost with this one.
                synchronized (pending) {
                    for (int j = ready.size() - 1; j > i; j--) {
                        pending.addFirst(ready.get(j));
                    }
                }
                throw e;
            } finally {
                synchronized (pending) {
                    // Only now are the frames free: a thread under pressure that saw them pending
                    // keeps waiting until here instead of failing while they are being released.
                    counts.pendingFrames -= n;
                    counts.releasedFrames += n;
                }
            }
            freed += n;
        }
        return freed;
    }

    /** Frames released so far (monotonic): sampled before an allocation, to see a release it missed. */
    public long releasedFrames() {
        return counts.releasedFrames;
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
            if (counts.pendingFrames == 0) {
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
        if (poll() > 0 || counts.releasedFrames != releasedBefore) {
            return true;
        }
        if (counts.pendingFrames == 0) {
            return false;
        }
        long deadline = System.nanoTime() + timeoutNanos;
        long park = 1_000;
        while (System.nanoTime() - deadline < 0) {
            LockSupport.parkNanos(park);
            park = Math.min(park * 2, 256_000);
            if (poll() > 0 || counts.releasedFrames != releasedBefore) {
                return true;
            }
        }
        return false;
    }

    /** Frames waiting for a grace period. */
    public long pendingFrames() {
        return counts.pendingFrames;
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
        for (EpochSlot s : registry.slots()) {
            Thread t = s.owner;
            if (t != null && t.isAlive() && s.activeVolatile() < oldest) {
                names.add("'" + t.getName() + "'");
            }
        }
        return names;
    }
}
