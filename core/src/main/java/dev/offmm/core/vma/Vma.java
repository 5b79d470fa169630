package dev.offmm.core.vma;

import dev.offmm.core.Prot;
import dev.offmm.offheap.lock.Backoff;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A virtual memory area: {@code [start, end)} with one protection and one set of flags.
 * Immutable except for its per-VMA lock: a change (split, merge, new protection) builds new
 * VMAs under mmap_lock held for write and detaches the old ones.
 *
 * <p>Per-VMA lock ({@code lock_vma_under_rcu}): a fault takes it for read with a CAS on
 * {@code lockWord} and holds it for the whole fault, so the VMA's page tables cannot be zapped
 * or freed under it. A writer (holding mmap_lock for write) sets {@link #WRITER} and waits for
 * readers to drain; readers that find the bit set fall back to mmap_lock. A written VMA is
 * detached and never unlocked: it is garbage, and any late reader falls back too.
 */
public final class Vma {
    /** Transparent huge pages requested ({@code MADV_HUGEPAGE}). */
    public static final int VM_HUGEPAGE = 1;
    /** Transparent huge pages forbidden ({@code MADV_NOHUGEPAGE}). */
    public static final int VM_NOHUGEPAGE = 1 << 1;
    /** Mapped with {@code NORESERVE}. */
    public static final int VM_NORESERVE = 1 << 2;

    private static final int WRITER = 1 << 31;
    private static final VarHandle LOCK;

    static {
        try {
            LOCK = MethodHandles.lookup().findVarHandle(Vma.class, "lockWord", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** First byte. */
    public final long start;
    /** One past the last byte. */
    public final long end;
    /** {@link Prot} bits. */
    public final int prot;
    /** {@code VM_*} flags. */
    public final int flags;

    /** Readers in the low bits, {@link #WRITER} in the sign bit. Volatile CAS only. */
    @SuppressWarnings("unused")
    private volatile int lockWord;

    /** A new, attached, unlocked VMA. */
    public Vma(long start, long end, int prot, int flags) {
        this.start = start;
        this.end = end;
        this.prot = prot;
        this.flags = flags;
    }

    /** The same range attributes over {@code [s, e)}. */
    public Vma slice(long s, long e) {
        return new Vma(s, e, prot, flags);
    }

    /** Whether {@code va} is inside. */
    public boolean contains(long va) {
        return va >= start && va < end;
    }

    /** Whether {@code next} can be merged after this one. */
    public boolean mergeableWith(Vma next) {
        return end == next.start && prot == next.prot && flags == next.flags;
    }

    /**
     * {@code vma_start_read}: one attempt to take the per-VMA lock for read. Fails if a writer
     * holds or wants it (or it is detached); the caller then falls back to mmap_lock.
     */
    public boolean tryReadLock() {
        int v = lockWord;
        while (v >= 0) {
            if (LOCK.compareAndSet(this, v, v + 1)) {
                return true;
            }
            v = lockWord;
        }
        return false;
    }

    /** {@code vma_end_read}. */
    public void readUnlock() {
        LOCK.getAndAdd(this, -1);
    }

    /**
     * {@code vma_start_write}: called with mmap_lock held for write. Sets the writer bit and waits
     * until in-flight readers (faults) are done. The VMA stays write-locked for good: the caller
     * detaches it.
     */
    public void writeLockAndDetach() {
        int v = (int) LOCK.getAndBitwiseOr(this, WRITER);
        int attempt = 0;
        while ((v & ~WRITER) != 0) {
            attempt = Backoff.idle(attempt);
            v = lockWord;
        }
    }

    /** Whether a writer has locked (and so detached) this VMA. */
    public boolean detached() {
        return lockWord < 0;
    }

    @Override
    public String toString() {
        return String.format("%016x-%016x %s%s", start, end, Prot.toString(prot),
                (flags & VM_HUGEPAGE) != 0 ? " hugepage" : (flags & VM_NOHUGEPAGE) != 0 ? " nohugepage" : "");
    }
}
