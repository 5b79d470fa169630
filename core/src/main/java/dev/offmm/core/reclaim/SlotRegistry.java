package dev.offmm.core.reclaim;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The {@link Reclaimer}'s participants: one {@link EpochSlot} per registered context. Slots of
 * contexts that closed, and of threads that died, are reused by later registrations; the array is
 * compacted when most of it is free, so a scan costs the number of contexts alive, not the number
 * that ever were. Registration and its bookkeeping run under this object's monitor; scans read
 * the array published last (volatile) without it.
 */
final class SlotRegistry {
    /** Every slot, free ones included; a new array is published with a volatile store on growth or compaction. */
    private volatile EpochSlot[] slots = new EpochSlot[0];
    /** Indices of free slots; guarded by this. */
    private int[] free = new int[8];
    private int freeCount;
    private int live;

    /** The slots to scan (volatile load): free ones have a null owner. */
    EpochSlot[] slots() {
        return slots;
    }

    /** Frees the slots of threads that have terminated. */
    synchronized void reapDead() {
        reapDeadLocked();
    }

    /** Registers a participant owned by the calling thread, outside any access. O(1) amortised. */
    EpochSlot register() {
        Thread me = Thread.currentThread();
        synchronized (this) {
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
    void unregister(EpochSlot slot) {
        synchronized (this) {
            if (slot.owner != null && slot.index >= 0 && slots[slot.index] == slot) {
                releaseLocked(slot);
            }
        }
    }

    /** Contexts registered and alive (racy). */
    int participants() {
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

    /**
     * The smallest generation the live slots of {@code a} other than {@code me}'s publish
     * (volatile loads), an IDLE slot counting as {@code idle}: the generations a barrier is known
     * to cover, or IDLE itself after a barrier of this poll's own. {@code me}'s slots are skipped:
     * the polling thread is outside its accesses, in program order with this scan.
     */
    long minPublished(EpochSlot[] a, Thread me, long idle) {
        long min = EpochSlot.IDLE;
        boolean dead = false;
        for (EpochSlot s : a) {
            Thread t = s.owner;
            if (t == null || t == me) {
                continue;
            }
            if (!t.isAlive()) {
                dead = true;
                continue;
            }
            long v = s.activeVolatile();
            min = Math.min(min, v == EpochSlot.IDLE ? idle : v);
        }
        if (dead) {
            reapDead();
        }
        return min;
    }

    /** Whether a slot of {@code a} belongs to another thread than the caller. */
    static boolean hasForeignOwner(EpochSlot[] a) {
        Thread me = Thread.currentThread();
        for (EpochSlot s : a) {
            Thread t = s.owner;
            if (t != null && t != me) {
                return true;
            }
        }
        return false;
    }
}
