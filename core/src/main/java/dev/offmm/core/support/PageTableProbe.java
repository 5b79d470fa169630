package dev.offmm.core.support;

import dev.offmm.core.Prot;
import dev.offmm.core.VmConfig;
import dev.offmm.core.fault.FaultHandler;
import dev.offmm.core.mm.VmCounters;
import dev.offmm.core.ops.MmServices;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PgtableAlloc;
import dev.offmm.core.pgtable.PtlSlot;
import dev.offmm.core.pgtable.Pte;
import dev.offmm.core.unmap.MmuGather;
import dev.offmm.core.vma.Vma;
import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.frame.FrameAllocator;
import dev.offmm.offheap.lock.PtLocks;
import dev.offmm.offheap.page.MemMap;

/**
 * One small address space with the PUD and PMD tables above {@link #VA} populated and the PMD
 * entry of {@code VA} left empty, for races on that entry and on the PTE table below it (the
 * jcstress tests of {@code __pte_alloc} and of two faults on one page). Its counters are its own,
 * so they are exact for one test state. Not thread-safe except where a method says so; the
 * methods the racing actors call ({@link Actor#pteAlloc}, {@link #pmdValueAcquire},
 * {@link #pteTableInitialised}, {@link Actor#writeFault}) are, each actor with its own
 * {@link Actor} (and so its own counters, as a thread context has).
 */
public final class PageTableProbe implements AutoCloseable {
    /** The address whose PMD entry the actors race on. */
    public static final long VA = 0x4000_0000L;

    private final MmServices s;
    private final VmCounters counters;
    /** The counters of the set-up and of the install races (each actor counts its own faults). */
    private final VmCounters.Local setup;
    private final Vma vma = new Vma(VA, VA + Entries.PMD_SIZE, Prot.READ | Prot.WRITE, 0);
    /** The same range advised HUGEPAGE: a write fault through it maps a THP if the entry is empty. */
    private final Vma hugeVma = new Vma(VA, VA + Entries.PMD_SIZE, Prot.READ | Prot.WRITE, Vma.VM_HUGEPAGE);
    private final long pmdEntry;
    private final long baseLocks;

    private PageTableProbe(MmServices s) {
        this.s = s;
        this.counters = s.mm().counters();
        this.setup = counters.local();
        long pmdE = s.pgtables().pmdAlloc(s.mm().pgd(), VA, setup);
        if (pmdE < 0) {
            close();
            throw new IllegalStateException("no memory for the probe's tables");
        }
        this.pmdEntry = pmdE;
        this.baseLocks = s.ptLocks().liveLocks();
    }

    /** A probe on {@code memory}: PGD, PUD and PMD tables, nothing below. */
    public static PageTableProbe create(PhysicalMemory memory, VmConfig config) {
        return new PageTableProbe(MmServices.create(memory, config));
    }


    /** The PMD entry of {@link #VA}, as a lockless walker loads it (acquire). Thread-safe. */
    public long pmdValueAcquire() {
        return s.entries().getAcquire(pmdEntry);
    }

    /**
     * Whether {@code pmdval} names a fully constructed, empty PTE table of this address space
     * whose lock is initialised and free: type, owner, zeroed entries, and a lock that can be
     * taken at once. Thread-safe.
     *
     * @throws IllegalStateException in debug mode, if the table's lock was never constructed
     */
    public boolean pteTableInitialised(long pmdval) {
        if (!Pte.table(pmdval)) {
            return false;
        }
        long table = Pte.pfn(pmdval);
        MemMap map = s.memory().zone().memMap();
        if (map.typeAcquire(table) != MemMap.TYPE_PTE_TABLE || map.ownerPlain(table) != s.mm().id()
                || !s.entries().tableEmpty(table)) {
            return false;
        }
        PtLocks locks = s.ptLocks();
        long ptl = locks.ptlockPtr(table);
        if (!locks.tryLock(ptl)) {
            return false;
        }
        locks.unlock(ptl);
        return true;
    }

    /** One racing thread's handle: its own lock-helper slot. */
    public final class Actor {
        private final PtlSlot slot = new PtlSlot(counters.local(), Vma.nextStripe());

        private Actor() {
        }

        /** {@code __pte_alloc} on the PMD entry of {@link #VA}: 0 on success. */
        public int pteAlloc() {
            return s.pgtables().pteAlloc(pmdEntry, slot.counts) == PgtableAlloc.OK ? 0 : 1;
        }

        /**
         * A write fault at {@code VA + offset} under the VMA's read lock, as a fault would take
         * it; returns the {@code FaultHandler} code (0 is OK).
         */
        public int writeFault(long offset) {
            return fault(vma, offset);
        }

        /** {@link #writeFault} through the HUGEPAGE-advised VMA: a THP fault if the PMD entry is empty. */
        public int thpWriteFault(long offset) {
            return fault(hugeVma, offset);
        }

        private int fault(Vma v, long offset) {
            if (!v.tryReadLock(slot.stripe)) {
                throw new IllegalStateException("the probe's VMA is write-locked");
            }
            try {
                return s.handler().handleMmFault(v, VA + offset, true, slot);
            } finally {
                v.readUnlock(slot.stripe);
            }
        }

        /**
         * The control's broken THP fault: a zeroed 2 MiB frame and a table to deposit, then the
         * huge entry stored under the PMD lock without rechecking that the entry is still empty.
         * A 4 KiB fault that installed its PTE table first loses it: the table and its page stay
         * allocated and counted, reachable from nothing. Returns 0, or 1 without memory.
         */
        public int brokenThpWriteFault() {
            long pfn = s.pages().allocHuge(false);
            if (pfn == FrameAllocator.NO_FRAME) {
                return 1;
            }
            long table = s.tables().allocTable(Entries.PTE, slot.counts);
            if (table == FrameAllocator.NO_FRAME) {
                s.huge().frames().freeUnused(pfn);
                return 1;
            }
            s.huge().frames().setMapcounts(pfn, 1);
            long lock = s.ptl().pmdLock(Entries.tableOf(pmdEntry));
            try {
                // Missing on purpose: if (!Pte.none(getPlain(pmdEntry))) give up.
                s.tables().deposit(Entries.tableOf(pmdEntry), table);
                s.huge().set(pmdEntry, Pte.mkHuge(pfn, Pte.protBits(true, true), false));
            } finally {
                s.ptl().unlock(lock);
            }
            slot.counts.add(VmCounters.RSS, 512);
            slot.counts.add(VmCounters.FRAMES_HELD, 512);
            slot.counts.increment(VmCounters.HUGE_PAGES);
            return 0;
        }

        /** Splits the huge entry of {@link #VA} ({@code __split_huge_pmd}); whether this call did. */
        public boolean splitHuge() {
            return s.huge().split(pmdEntry, VA, "probe");
        }
    }

    /** A handle for one racing thread. */
    public Actor actor() {
        return new Actor();
    }

    /** The frame mapped at {@code VA + offset}, or -1 (acquire loads). */
    public long mappedPfn(long offset) {
        long pmdval = pmdValueAcquire();
        if (!Pte.table(pmdval)) {
            return -1;
        }
        long pte = s.entries().getAcquire(Entries.pteOffset(pmdval, VA + offset));
        return Pte.ownsFrame(pte) ? Pte.pfn(pte) : -1;
    }

    /** The frame of the huge entry of {@link #VA}, or -1 if it is not huge (acquire). */
    public long hugePfn() {
        long pmdval = pmdValueAcquire();
        return Pte.huge(pmdval) ? Pte.pfn(pmdval) : -1;
    }

    /** PTE {@code i} of the table {@code pmdval} names, as a lockless walker loads it (acquire). Thread-safe. */
    public long pteAcquire(long pmdval, int i) {
        return s.entries().getAcquire(Entries.entry(Pte.pfn(pmdval), i));
    }

    /** Whether {@code pte} maps frame {@code pfn} as an anonymous page. */
    public static boolean maps(long pte, long pfn) {
        return Pte.ownsFrame(pte) && Pte.pfn(pte) == pfn;
    }

    /** Whether {@code pmdval} is a huge leaf. */
    public static boolean huge(long pmdval) {
        return Pte.huge(pmdval);
    }

    /** Whether {@code pmdval} names a table. */
    public static boolean table(long pmdval) {
        return Pte.table(pmdval);
    }

    /** Huge entries mapped. */
    public long hugePages() {
        return counters.sum(VmCounters.HUGE_PAGES);
    }

    /** THP-eligible faults that fell back to 4 KiB pages. */
    public long thpFallbacks() {
        return counters.sum(VmCounters.THP_FALLBACK);
    }

    /** The mapcount of frame {@code pfn}. */
    public int mapcount(long pfn) {
        return s.memory().zone().memMap().mapcountVolatile(pfn);
    }

    /** Resident data pages. */
    public long rssPages() {
        return counters.sum(VmCounters.RSS);
    }

    /** Write faults that installed a fresh page. */
    public long anonFaults() {
        return counters.sum(VmCounters.FAULT_ANON);
    }

    /** PTE tables alive. */
    public long pteTables() {
        return counters.sum(VmCounters.PTE_TABLES);
    }

    /** Frames held: data pages and tables of every level, the PGD included. */
    public long framesHeld() {
        return counters.sum(VmCounters.FRAMES_HELD);
    }

    /** Populate races lost (a table built and destroyed because another was installed first). */
    public long tableRacesLost() {
        return counters.sum(VmCounters.TABLE_RACES_LOST);
    }

    /** Live page-table locks of this space, beyond those of the PGD and the probe's own tables. */
    public long extraLiveLocks() {
        return s.ptLocks().liveLocks() - baseLocks;
    }

    /**
     * Unmaps everything through the real path (zap, free_pgtables, a gather released at once, as
     * no context is registered) and frees the PGD. Call once, when no actor runs.
     */
    @Override
    public void close() {
        MmuGather tlb = s.zap().gather();
        s.zap().unmapRange(tlb, 0, Entries.USER_END);
        s.freePgtables().freePgtables(tlb, 0, Entries.USER_END, 0, Entries.USER_END);
        tlb.finish();
        s.tables().freePgd(s.mm().pgd());
    }

    /** The fault handler's code for success. */
    public static int ok() {
        return FaultHandler.OK;
    }
}
