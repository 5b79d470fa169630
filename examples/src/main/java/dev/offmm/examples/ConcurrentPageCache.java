package dev.offmm.examples;

import dev.offmm.core.Advice;
import dev.offmm.core.AddressSpace;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Mmu;
import dev.offmm.core.Prot;

/**
 * A concurrent off-heap cache of fixed 4 KiB values in one big mapping: slot {@code k % slots}
 * holds key {@code k}. A slot's first long is a version word (even: stable, odd: being
 * written) and its second the key, so readers are lock-free (a seqlock through
 * {@link Mmu#getLongAcquire} / {@link Mmu#compareAndSetLong}); eviction drops the slot's page
 * with {@code DONTNEED}, so memory is only resident for slots in use.
 *
 * <p>Each thread uses its own {@link Mmu}; the cache itself is shared.
 */
public final class ConcurrentPageCache implements AutoCloseable {
    /** Bytes per slot. */
    public static final long SLOT = 4096;
    /** Payload bytes per slot (after the version and key words). */
    public static final int PAYLOAD = (int) SLOT - 16;

    private final AddressSpace as;
    private final long base;
    private final long slots;

    /** A cache of {@code slots} slots. */
    public ConcurrentPageCache(AddressSpace as, long slots) {
        if (slots <= 0) {
            throw new IllegalArgumentException("slots=" + slots + " (expected > 0)");
        }
        this.as = as;
        this.slots = slots;
        this.base = as.mmap(0, slots * SLOT, Prot.READ | Prot.WRITE, MapFlags.NORESERVE);
    }

    private long slotOf(long key) {
        return base + Math.floorMod(key, slots) * SLOT;
    }

    /** Stores {@code value} (at most {@link #PAYLOAD} bytes) under {@code key}, replacing the slot's entry. */
    public void put(Mmu mmu, long key, byte[] value) {
        if (value.length > PAYLOAD) {
            throw new IllegalArgumentException("value.length=" + value.length + " (expected <= " + PAYLOAD + ")");
        }
        long slot = slotOf(key);
        long v;
        do {
            v = mmu.getLongAcquire(slot);
        } while ((v & 1) != 0 || !mmu.compareAndSetLong(slot, v, v + 1));
        mmu.putLong(slot + 8, key + 1);
        mmu.write(slot + 16, value, 0, value.length);
        mmu.putLongRelease(slot, v + 2);
    }

    /**
     * Copies the value of {@code key} into {@code dst} (its first {@code dst.length} bytes) and
     * returns true, or returns false on a miss.
     */
    public boolean get(Mmu mmu, long key, byte[] dst) {
        long slot = slotOf(key);
        while (true) {
            long v = mmu.getLongAcquire(slot);
            if ((v & 1) != 0) {
                Thread.onSpinWait();
                continue;
            }
            boolean hit = mmu.getLong(slot + 8) == key + 1;
            if (hit) {
                mmu.read(slot + 16, dst, 0, Math.min(dst.length, PAYLOAD));
            }
            // A plain read between acquires: order it before the recheck (seqlock read side).
            java.lang.invoke.VarHandle.loadLoadFence();
            if (mmu.getLongAcquire(slot) == v) {
                return hit;
            }
        }
    }

    /**
     * Evicts every slot in {@code [fromSlot, fromSlot + count)}: their pages are dropped and read
     * as zeros (empty) afterwards. Readers and writers of those slots may race: a racing put may
     * survive or vanish, as with any eviction.
     */
    public void evict(long fromSlot, long count) {
        as.madvise(base + fromSlot * SLOT, count * SLOT, Advice.DONTNEED);
    }

    /** Unmaps the cache. */
    @Override
    public void close() {
        as.munmap(base, slots * SLOT);
    }
}
