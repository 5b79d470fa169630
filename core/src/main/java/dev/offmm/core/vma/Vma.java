package dev.offmm.core.vma;

import dev.offmm.core.Prot;
import dev.offmm.offheap.host.Backoff;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A virtual memory area: {@code [start, end)} with one protection and one set of flags.
 * Immutable except for its per-VMA lock: a change (split, merge, new protection) builds new
 * VMAs under mmap_lock held for write and detaches the old ones.
 *
 * <p>Per-VMA lock ({@code lock_vma_under_rcu}): a fault takes it for read by incrementing its
 * context's stripe of the reader counts and holds it for the whole fault, so the VMA's page tables
 * cannot be zapped or freed under it. A writer (holding mmap_lock for write) raises the writer
 * flag and waits for every stripe to drain; readers that see the flag fall back to mmap_lock. A
 * written VMA is detached and never unlocked: it is garbage, and any late reader falls back too.
 */
public final class Vma {
    /** Transparent huge pages requested ({@code MADV_HUGEPAGE}). */
    public static final int VM_HUGEPAGE = 1;
    /** Transparent huge pages forbidden ({@code MADV_NOHUGEPAGE}). */
    public static final int VM_NOHUGEPAGE = 1 << 1;
    /** Mapped with {@code NORESERVE}. */
    public static final int VM_NORESERVE = 1 << 2;
    /** 2 MiB pages only ({@code MAP_HUGETLB}). */
    public static final int VM_HUGETLB = 1 << 3;

    /**
     * Reader stripes: each context is given one round robin ({@link #nextStripe()}), so up to
     * this many concurrent faults never bounce one line.
     */
    private static final int STRIPES = 4;
    /** Longs between stripes: 128 bytes, two cache lines, against adjacent-line prefetch. */
    private static final int STRIDE = 16;
    private static final VarHandle READERS = MethodHandles.arrayElementVarHandle(long[].class);

    private static final AtomicInteger STRIPE_SEQUENCE = new AtomicInteger();

    /** First byte. */
    public final long start;
    /** One past the last byte. */
    public final long end;
    /** {@link Prot} bits. */
    public final int prot;
    /** {@code VM_*} flags. */
    public final int flags;

    /**
     * Striped reader counts (the kernel's per-VMA lock, made scalable like a big-reader lock):
     * a reader uses the stripe its context was given, at index {@code (stripe + 1) * STRIDE}: a
     * stride of padding before the first stripe keeps the array's header (which every reader
     * loads for the bounds check) and this VMA's fields off the written lines, and a stride after
     * the last keeps the next object off them. Volatile read-modify-writes only.
     */
    private final long[] readers = new long[(STRIPES + 2) * STRIDE];
    /** Set once by the writer ({@code vma_start_write}); volatile load and store. */
    private volatile boolean writer;

    /** A new, attached, unlocked VMA. */
    public Vma(long start, long end, int prot, int flags) {
        this.start = start;
        this.end = end;
        this.prot = prot;
        this.flags = flags;
    }

    /** The stripe for a new reader context: round robin, so contexts alive together differ. */
    public static int nextStripe() {
        return STRIPE_SEQUENCE.getAndIncrement();
    }

    /** The same range attributes over {@code [s, e)}. */
    public Vma slice(long s, long e) {
        return new Vma(s, e, prot, flags);
    }

    /** Whether {@code va} is inside. */
    public boolean contains(long va) {
        return va >= start && va < end;
    }

    /** A hugetlb VMA ({@link #VM_HUGETLB}). */
    public boolean hugetlb() {
        return (flags & VM_HUGETLB) != 0;
    }

    /** Whether {@code next} can be merged after this one. */
    public boolean mergeableWith(Vma next) {
        return end == next.start && prot == next.prot && flags == next.flags;
    }

    /** The offset in {@code readers} of stripe {@code stripe} (any int: it is reduced mod STRIPES). */
    private static int offsetOf(int stripe) {
        return ((stripe & (STRIPES - 1)) + 1) * STRIDE;
    }

    /**
     * {@code vma_start_read}: one attempt to take the per-VMA lock for read. Fails if a writer
     * holds or wants it (or it is detached); the caller then falls back to mmap_lock.
     *
     * <p>Dekker pairing with {@link #writeLockAndDetach}: the reader's volatile increment comes
     * before its volatile read of {@code writer}; the writer's volatile store of {@code writer}
     * comes before its volatile reads of the stripes. So either the reader sees the writer and
     * backs out, or the writer sees the reader and waits for it.
     */
    public boolean tryReadLock(int stripe) {
        if (writer) {
            return false;
        }
        int s = offsetOf(stripe);
        getAndAddReaders(s, 1L);
        if (writer) {
            getAndAddReaders(s, -1L);
            return false;
        }
        return true;
    }

    /** {@code vma_end_read}: with the stripe {@link #tryReadLock} was given. */
    public void readUnlock(int stripe) {
        getAndAddReaders(offsetOf(stripe), -1L);
    }

    /** Volatile read-modify-write of a reader stripe. */
    private void getAndAddReaders(int stripe, long delta) {
        READERS.getAndAdd(readers, stripe, delta);
    }

    /** Volatile load of a reader stripe. */
    private long readersVolatile(int stripe) {
        return (long) READERS.getVolatile(readers, stripe);
    }

    /**
     * {@code vma_start_write}: called with mmap_lock held for write. Sets the writer flag and waits
     * until in-flight readers (faults) are done. The VMA stays write-locked for good: the caller
     * detaches it.
     */
    public void writeLockAndDetach() {
        writer = true;
        int attempt = 0;
        for (int s = 0; s < STRIPES; s++) {
            while (readersVolatile(offsetOf(s)) != 0) {
                attempt = Backoff.idle(attempt);
            }
        }
    }

    /** Whether a writer has locked (and so detached) this VMA. */
    public boolean detached() {
        return writer;
    }

    @Override
    public String toString() {
        return String.format("%016x-%016x %s%s%s", start, end, Prot.toString(prot),
                (flags & VM_HUGEPAGE) != 0 ? " hugepage" : (flags & VM_NOHUGEPAGE) != 0 ? " nohugepage" : "",
                hugetlb() ? " hugetlb" : "");
    }
}
