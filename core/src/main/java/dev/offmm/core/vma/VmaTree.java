package dev.offmm.core.vma;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * The VMAs of an address space and its {@code mmap_lock}.
 *
 * <p>The VMAs are a sorted, non-overlapping array replaced as a whole by writers (copy on write)
 * and published with a volatile store, so a fault can look a VMA up without any lock (the
 * kernel's maple tree under RCU) and then take that VMA's read lock. Writers hold
 * {@link #mmapLock} for write, build the new array, write-lock every VMA they replace, then
 * publish. Readers holding mmap_lock for read see a stable array.
 */
public final class VmaTree {
    private static final Vma[] EMPTY = new Vma[0];

    /** {@code mmap_lock}: read for faults that could not take a VMA lock, write for changes. */
    private final ReentrantReadWriteLock mmapLock = new ReentrantReadWriteLock();
    /** Published with a volatile store by writers; read with a volatile load. */
    private volatile Vma[] vmas = EMPTY;

    /** {@code mmap_lock}. */
    public ReentrantReadWriteLock mmapLock() {
        return mmapLock;
    }

    /** The current array (do not modify). */
    public Vma[] snapshot() {
        return vmas;
    }

    /** Number of VMAs. */
    public int size() {
        return vmas.length;
    }

    /** The VMA containing {@code va}, or {@code null}; lockless. */
    public Vma find(long va) {
        return find(vmas, va);
    }

    /** The VMA of {@code array} containing {@code va}, or {@code null}. */
    public static Vma find(Vma[] array, long va) {
        int i = indexAfter(array, va) - 1;
        if (i >= 0 && array[i].contains(va)) {
            return array[i];
        }
        return null;
    }

    /** The index of the first VMA whose start is above {@code va}. */
    static int indexAfter(Vma[] array, long va) {
        int lo = 0;
        int hi = array.length;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (array[mid].start <= va) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return lo;
    }

    /**
     * {@code lock_vma_under_rcu}: the VMA containing {@code va}, read-locked on reader stripe
     * {@code stripe}, or {@code null} if there is none or it is being changed (the caller falls
     * back to mmap_lock).
     */
    public Vma lockVmaForRead(long va, int stripe) {
        Vma vma = find(va);
        if (vma == null || !vma.tryReadLock(stripe)) {
            return null;
        }
        if (vma.detached()) {
            vma.readUnlock(stripe);
            return null;
        }
        return vma;
    }

    /** VMAs overlapping {@code [start, end)}, in order. Caller holds mmap_lock. */
    public List<Vma> overlapping(long start, long end) {
        Vma[] array = vmas;
        List<Vma> out = new ArrayList<>();
        int i = Math.max(0, indexAfter(array, start) - 1);
        for (; i < array.length && array[i].start < end; i++) {
            if (array[i].end > start) {
                out.add(array[i]);
            }
        }
        return out;
    }

    /** The VMA ending at or before {@code va} closest to it, or {@code null}. Caller holds mmap_lock. */
    public Vma prevOf(long va) {
        Vma[] array = vmas;
        int i = indexAfter(array, va - 1) - 1;
        while (i >= 0 && array[i].end > va) {
            i--;
        }
        return i >= 0 ? array[i] : null;
    }

    /** The VMA starting at or after {@code va} closest to it, or {@code null}. Caller holds mmap_lock. */
    public Vma nextOf(long va) {
        Vma[] array = vmas;
        for (int i = Math.max(0, indexAfter(array, va) - 1); i < array.length; i++) {
            if (array[i].start >= va) {
                return array[i];
            }
        }
        return null;
    }

    /**
     * Replaces the VMAs overlapping {@code [start, end)} with {@code replacement} (sorted, inside
     * the hull of what it replaces plus {@code [start, end)}), merging with compatible neighbours.
     * Write-locks and detaches every VMA it drops. Caller holds mmap_lock for write.
     */
    public void replace(long start, long end, List<Vma> replacement) {
        Vma[] array = vmas;
        List<Vma> next = new ArrayList<>(array.length + replacement.size() + 2);
        int i = 0;
        while (i < array.length && array[i].end <= start) {
            next.add(array[i++]);
        }
        List<Vma> dropped = new ArrayList<>();
        while (i < array.length && array[i].start < end) {
            dropped.add(array[i++]);
        }
        for (Vma v : replacement) {
            appendMerging(next, v, dropped);
        }
        while (i < array.length) {
            appendMerging(next, array[i++], dropped);
        }
        for (Vma v : dropped) {
            v.writeLockAndDetach();
        }
        vmas = next.toArray(EMPTY);
    }

    private static void appendMerging(List<Vma> out, Vma v, List<Vma> dropped) {
        if (!out.isEmpty()) {
            Vma last = out.getLast();
            if (last.mergeableWith(v)) {
                out.set(out.size() - 1, new Vma(last.start, v.end, v.prot, v.flags));
                if (!dropped.contains(last)) {
                    dropped.add(last);
                }
                if (!dropped.contains(v)) {
                    dropped.add(v);
                }
                return;
            }
        }
        out.add(v);
    }
}
