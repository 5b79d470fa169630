package dev.offmm.core.mm;

import dev.offmm.core.LockMode;
import dev.offmm.core.VmConfig;
import dev.offmm.core.vma.VmaTree;
import dev.offmm.offheap.PhysicalMemory;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The state of one address space, the kernel's {@code mm_struct}: its identity, its PGD and
 * {@code page_table_lock}, its VMA tree, its counters, its TLB generation and whether it is
 * closed. Data only: it builds no service and calls none. The services that operate on an mm are
 * built once, in {@code dev.offmm.core.ops.MmServices}, and are handed the parts of it they use.
 *
 * <p>Internal: {@code dev.offmm.core} does not export this package.
 */
public final class Mm extends MmFields {
    private static final AtomicLong IDS = new AtomicLong();
    private static final VarHandle TLB_GEN;

    static {
        try {
            TLB_GEN = MethodHandles.lookup().findVarHandle(MmTlbGen.class, "tlbGen", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final long id;
    private final PhysicalMemory memory;
    private final VmConfig config;
    private final long pgdPfn;
    private final long pageTableLock;
    private final VmaTree vmas = new VmaTree();
    private final VmCounters counters;

    /** Set once by close, under mmap_lock held for write. */
    private volatile boolean closed;
    /**
     * The fork sequence ({@code mm->write_protect_seq}): odd while a fork write-protects this
     * space. Volatile: a pin raises a page's refcount and then reads it, a fork writes it and
     * then reads refcounts, so one of the two sees the other.
     */
    private volatile long forkSeq;
    /** Whether a fork ever shared a table of this space (volatile; set under mmap_lock for write). */
    private volatile boolean sharing;
    /**
     * Pins taken in this space and not yet closed (volatile read-modify-writes): a fork that reads
     * 0 after raising the fork sequence knows no page it copies is pinned and checks none.
     */
    private final AtomicLong pins = new AtomicLong();

    /**
     * The state of an address space whose PGD, already allocated and constructed, is
     * {@code pgdPfn}, with {@code page_table_lock} at handle {@code pageTableLock}.
     */
    public Mm(long id, PhysicalMemory memory, VmConfig config, long pgdPfn, long pageTableLock, VmCounters counters) {
        this.id = id;
        this.memory = memory;
        this.config = config;
        this.pgdPfn = pgdPfn;
        this.pageTableLock = pageTableLock;
        this.counters = counters;
    }

    /** A fresh address-space identity, stored in the owner word of its tables. */
    public static long nextId() {
        return IDS.incrementAndGet();
    }

    /** Whether {@code mode} gives PTE tables their own lock. */
    public static boolean splitPte(LockMode mode) {
        return mode == LockMode.SPLIT_PTE || mode == LockMode.SPLIT_PTE_PMD;
    }

    /** Whether {@code mode} gives PMD tables their own lock. */
    public static boolean splitPmd(LockMode mode) {
        return mode == LockMode.SPLIT_PTE_PMD;
    }

    /** Identity, stored in the owner word of this mm's tables. */
    public long id() {
        return id;
    }

    /** The physical memory the tables and pages come from. */
    public PhysicalMemory memory() {
        return memory;
    }

    /** The configuration. */
    public VmConfig config() {
        return config;
    }

    /** The PGD table's frame. */
    public long pgd() {
        return pgdPfn;
    }

    /** The handle of {@code page_table_lock} (the PGD frame's ptl word). */
    public long pageTableLock() {
        return pageTableLock;
    }

    /** The VMAs and {@code mmap_lock}. */
    public VmaTree vmas() {
        return vmas;
    }

    /** The counters. */
    public VmCounters counters() {
        return counters;
    }

    /** Whether the address space is closed (volatile). */
    public boolean isClosed() {
        return closed;
    }

    /** Marks the address space closed; called by close with mmap_lock held for write. */
    public void markClosed() {
        closed = true;
    }

    /**
     * Fails if closed. Operations call it again once they hold mmap_lock: close sets the flag
     * under mmap_lock held for write, so a call that queued behind close sees it there.
     */
    public void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("address space is closed");
        }
        if (memory.isClosed()) {
            throw new IllegalStateException("the physical memory of this address space is closed");
        }
    }

    /** The fork sequence (volatile load); odd while a fork runs. */
    public long forkSeq() {
        return forkSeq;
    }

    /** A fork begins write-protecting this space (mmap_lock held for write). */
    public void beginFork() {
        forkSeq++;
    }

    /** The fork is done; its TLB shootdown came first. */
    public void endFork() {
        forkSeq++;
    }

    /** A pin took a page of this space (before it reads the fork sequence again). */
    public void pinOpened() {
        pins.incrementAndGet();
    }

    /** A pin of this space closed, or gave up. */
    public void pinClosed() {
        pins.decrementAndGet();
    }

    /** Pins of this space still open (volatile). */
    public long livePins() {
        return pins.get();
    }

    /** Records that tables of this space may be shared; unsharing checks only spaces marked so. */
    public void markSharing() {
        sharing = true;
    }

    /** Whether {@link #markSharing} ran. */
    public boolean mayShare() {
        return sharing;
    }

    /** The current TLB generation (acquire); pairs with the volatile bump in {@link #flushTlb()}. */
    public long tlbGenAcquire() {
        return (long) TLB_GEN.getAcquire(this);
    }

    /**
     * Shoots down every context's TLB: bumps the generation (a volatile read-modify-write) and
     * returns the new one. Called with the lock that guarded the cleared entries still held,
     * before any page it mapped can be freed (the freeing waits for a grace period).
     */
    public long flushTlb() {
        counters.increment(VmCounters.TLB_FLUSHES);
        return (long) TLB_GEN.getAndAdd(this, 1L) + 1;
    }

    @Override
    public String toString() {
        return "mm " + id;
    }
}

/** Padding before the TLB generation: two cache lines, against adjacent-line prefetch. */
abstract class MmPadBefore {
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

/**
 * The TLB generation, alone on its lines: bumped by every shootdown with a volatile
 * read-modify-write ({@link Mm#flushTlb}); read with acquire ({@link Mm#tlbGenAcquire}) by every
 * access, which must not miss because of a write to a neighbouring field.
 */
abstract class MmTlbGen extends MmPadBefore {
    volatile long tlbGen;
}

/** Padding after the TLB generation; the read-mostly fields of {@link Mm} follow it. */
abstract class MmFields extends MmTlbGen {
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
}
