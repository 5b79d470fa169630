package dev.offmm.core.mm;

import dev.offmm.core.LockMode;
import dev.offmm.core.VmConfig;
import dev.offmm.core.mmu.Reclaimer;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PgtableAlloc;
import dev.offmm.core.pgtable.PtlHelpers;
import dev.offmm.core.vma.VmaTree;
import dev.offmm.offheap.MemMap;
import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.frame.FrameAllocator;
import dev.offmm.offheap.lock.PtLocks;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The internal state of one address space (the kernel's {@code mm_struct}): the PGD, the lock
 * helpers, the VMA tree, the counters, the TLB generation and the reclaimer. Package-spanning
 * internals reach each other through it; users see {@link dev.offmm.core.AddressSpace}.
 */
public final class Mm {
    private static final AtomicLong IDS = new AtomicLong();
    private static final VarHandle TLB_GEN;

    static {
        try {
            TLB_GEN = MethodHandles.lookup().findVarHandle(Mm.class, "tlbGen", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** Identity, stored in the owner word of this mm's tables. */
    public final long id = IDS.incrementAndGet();
    /** The physical memory. */
    public final PhysicalMemory memory;
    /** Its mem_map. */
    public final MemMap memMap;
    /** Its frame allocator. */
    public final FrameAllocator frames;
    /** Page-table entries in its region. */
    public final Entries entries;
    /** Configuration. */
    public final VmConfig config;
    /** Split locks for PTE tables. */
    public final boolean splitPte;
    /** Split locks for PMD tables. */
    public final boolean splitPmd;
    /** The ptl-word helpers (inline or debug). */
    public final PtLocks ptLocks;
    /** Counters. */
    public final VmCounters counters = new VmCounters();
    /** The lock helper family. */
    public final PtlHelpers ptl;
    /** Table allocation, constructors and destructors. */
    public final PgtableAlloc pgtables;
    /** VMAs and mmap_lock. */
    public final VmaTree vmas = new VmaTree();
    /** Grace periods for freed pages and tables. */
    public final Reclaimer reclaimer;
    /** The PGD table. */
    public final long pgdPfn;
    /** The handle of {@code page_table_lock}. */
    public final long pageTableLock;

    /** Set once by close, under mmap_lock held for write; volatile. */
    private volatile boolean closed;

    /** Bumped by every shootdown; contexts compare it on each access. */
    @SuppressWarnings("unused")
    private volatile long tlbGen;

    /**
     * Creates the mm and its PGD.
     *
     * @throws dev.offmm.core.VmException with ENOMEM if the PGD or its lock cannot be allocated
     */
    public Mm(PhysicalMemory memory, VmConfig config) {
        this.memory = memory;
        this.memMap = memory.memMap();
        this.frames = memory.frames();
        this.entries = new Entries(memory.region());
        this.config = config;
        LockMode mode = config.effectiveLockMode();
        this.splitPte = mode == LockMode.SPLIT_PTE || mode == LockMode.SPLIT_PTE_PMD;
        this.splitPmd = mode == LockMode.SPLIT_PTE_PMD;
        this.ptLocks = new PtLocks(memory, config.debugLocks());
        this.pgtables = new PgtableAlloc(this);
        this.pgdPfn = pgtables.allocPgd();
        this.pageTableLock = ptLocks.ptlockPtr(pgdPfn);
        this.ptl = new PtlHelpers(this);
        this.reclaimer = new Reclaimer(this);
    }

    /** Whether the address space is closed. */
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

    /** How long an allocation under memory pressure waits for a grace period before failing. */
    private static final long RECLAIM_WAIT_NANOS = 50_000_000L;

    /**
     * Allocates an order-0 frame for this address space (a data page or a table); under memory
     * pressure, first releases frames whose grace period has passed, waiting a bounded time for
     * contexts to move on. Returns {@link FrameAllocator#NO_FRAME} if there is still none.
     */
    public long allocFrame() {
        long pfn = frames.allocFrame();
        for (int tries = 0; pfn == FrameAllocator.NO_FRAME && tries < 4 && reclaimer.reclaimUnderPressure(RECLAIM_WAIT_NANOS);
                tries++) {
            pfn = frames.allocFrame();
        }
        return pfn;
    }

    /** The current TLB generation (acquire); pairs with the release in {@link #flushTlb()}. */
    public long tlbGen() {
        return (long) TLB_GEN.getAcquire(this);
    }

    /**
     * Shoots down every context's TLB: bumps the generation. Called with the lock that guarded
     * the cleared entries still held, before any page it mapped can be freed (the freeing
     * itself waits for a grace period in {@link Reclaimer}).
     */
    public long flushTlb() {
        counters.tlbFlushes.increment();
        return (long) TLB_GEN.getAndAdd(this, 1L) + 1;
    }
}
