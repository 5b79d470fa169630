package dev.offmm.core.pgtable;

import dev.offmm.core.VmException;
import dev.offmm.core.mm.Mm;
import dev.offmm.offheap.MemMap;
import dev.offmm.offheap.frame.FrameAllocator;
import dev.offmm.offheap.inject.FailSite;
import dev.offmm.offheap.lock.LockClass;

/**
 * Page-table allocation, constructors and destructors, and the populate protocol of
 * {@code __pud_alloc} / {@code __pmd_alloc} / {@code __pte_alloc}:
 * <ol>
 *   <li>allocate and zero a frame and run its constructor, outside any lock (the constructor
 *       allocates the debug lock and can fail: the caller gets {@link #ENOMEM});</li>
 *   <li>take the lock that guards the parent entry and recheck that it is still empty;</li>
 *   <li>publish with a release store (pairing with walkers' acquire loads), unlock;</li>
 *   <li>if another thread won, destroy and free ours.</li>
 * </ol>
 * Every free path runs the destructor: {@link #freeTable} is the only way a table frame goes
 * back, used by {@code pteFree}/{@code pmdFree} here and by the mmu_gather after a grace period.
 */
public final class PgtableAlloc {
    /** Success. */
    public static final int OK = 0;
    /** No memory for a table or its lock. */
    public static final int ENOMEM = -12;

    /** Table level: PTE. */
    public static final int PTE = 1;
    /** Table level: PMD. */
    public static final int PMD = 2;
    /** Table level: PUD. */
    public static final int PUD = 3;

    private final Mm mm;
    private final MemMap map;
    private final FrameAllocator frames;
    private final Entries entries;

    /** The allocator of {@code mm}'s tables. */
    public PgtableAlloc(Mm mm) {
        this.mm = mm;
        this.map = mm.memMap;
        this.frames = mm.frames;
        this.entries = mm.entries;
    }

    /**
     * Allocates the PGD and constructs {@code page_table_lock} in its ptl word (the PGD frame's
     * lock word is otherwise unused, so the mm lock lives there and every lock is a handle of the
     * same kind).
     *
     * @throws VmException ENOMEM if the frame or the lock cannot be allocated
     */
    public long allocPgd() {
        long pfn = mm.memory.failPoints().shouldFail(FailSite.PAGE_TABLE) ? FrameAllocator.NO_FRAME : frames.allocFrame();
        if (pfn == FrameAllocator.NO_FRAME) {
            throw new VmException(VmException.Code.ENOMEM, "no frame for the PGD");
        }
        entries.zeroTable(pfn);
        if (!mm.ptLocks.ptlockInit(pfn, LockClass.PAGE_TABLE_LOCK)) {
            frames.freeFrame(pfn);
            throw new VmException(VmException.Code.ENOMEM, "no lock for page_table_lock");
        }
        map.setOwnerPlain(pfn, mm.id);
        map.setTypeRelease(pfn, MemMap.TYPE_PGD_TABLE);
        mm.counters.framesHeld.increment();
        return pfn;
    }

    /** Destroys and frees the PGD; it must be empty and {@code page_table_lock} not held. */
    public void freePgd(long pfn) {
        if (!entries.tableEmpty(pfn)) {
            throw new IllegalStateException("freeing a PGD that still has entries");
        }
        mm.ptLocks.ptlockFree(pfn);
        map.setTypeRelease(pfn, MemMap.TYPE_NONE);
        frames.freeFrame(pfn);
        mm.counters.framesHeld.decrement();
    }

    /**
     * Allocates, zeroes and constructs a table of {@code level}; no lock is held or taken.
     * Returns {@link FrameAllocator#NO_FRAME} if the frame or the constructor failed, with
     * nothing leaked.
     */
    public long allocTable(int level) {
        if (mm.memory.failPoints().shouldFail(FailSite.PAGE_TABLE)) {
            return FrameAllocator.NO_FRAME;
        }
        long pfn = mm.allocFrame();
        if (pfn == FrameAllocator.NO_FRAME) {
            return FrameAllocator.NO_FRAME;
        }
        entries.zeroTable(pfn);
        if (!ctor(pfn, level)) {
            frames.freeFrame(pfn);
            return FrameAllocator.NO_FRAME;
        }
        mm.counters.framesHeld.increment();
        mm.counters.tablesAllocated.increment();
        return pfn;
    }

    /**
     * Destroys (destructor: frees the split lock, clears the type) and frees a table of
     * {@code level}. The table must be unlinked, empty, and unreachable by lockless walkers.
     */
    public void freeTable(long pfn, int level) {
        dtor(pfn, level);
        frames.freeFrame(pfn);
        mm.counters.framesHeld.decrement();
        mm.counters.tablesFreed.increment();
    }

    private boolean ctor(long pfn, int level) {
        switch (level) {
            case PTE -> {
                if (mm.splitPte && !mm.ptLocks.ptlockInit(pfn, LockClass.PTE)) {
                    return false;
                }
                map.setTypeRelease(pfn, MemMap.TYPE_PTE_TABLE);
                mm.counters.pteTables.increment();
            }
            case PMD -> {
                if (mm.splitPmd && !mm.ptLocks.ptlockInit(pfn, LockClass.PMD)) {
                    return false;
                }
                map.setPrivatePlain(pfn, 0);
                map.setTypeRelease(pfn, MemMap.TYPE_PMD_TABLE);
                mm.counters.pmdTables.increment();
            }
            case PUD -> {
                map.setTypeRelease(pfn, MemMap.TYPE_PUD_TABLE);
                mm.counters.pudTables.increment();
            }
            default -> throw new IllegalArgumentException("level=" + level + " (expected PTE, PMD or PUD)");
        }
        map.setOwnerPlain(pfn, mm.id);
        return true;
    }

    private void dtor(long pfn, int level) {
        int expected = switch (level) {
            case PTE -> MemMap.TYPE_PTE_TABLE;
            case PMD -> MemMap.TYPE_PMD_TABLE;
            case PUD -> MemMap.TYPE_PUD_TABLE;
            default -> throw new IllegalArgumentException("level=" + level + " (expected PTE, PMD or PUD)");
        };
        int type = map.typeAcquire(pfn);
        if (type != expected || map.ownerPlain(pfn) != mm.id) {
            throw new IllegalStateException("destructor for level " + level + " on pfn=" + pfn + " of type " + type
                    + " owned by mm " + map.ownerPlain(pfn));
        }
        switch (level) {
            case PTE -> {
                if (mm.splitPte) {
                    mm.ptLocks.ptlockFree(pfn);
                }
                mm.counters.pteTables.decrement();
            }
            case PMD -> {
                if (mm.splitPmd) {
                    mm.ptLocks.ptlockFree(pfn);
                }
                mm.counters.pmdTables.decrement();
            }
            default -> mm.counters.pudTables.decrement();
        }
        map.setOwnerPlain(pfn, 0);
        map.setTypeRelease(pfn, MemMap.TYPE_NONE);
    }

    /**
     * {@code __pud_alloc}: makes the PGD entry at {@code pgdEntry} point at a PUD table.
     * Enters and returns with no page-table lock held; takes {@code page_table_lock} inside.
     */
    public int pudAlloc(long pgdEntry) {
        return populate(pgdEntry, PUD);
    }

    /**
     * {@code __pmd_alloc}: makes the PUD entry at {@code pudEntry} point at a PMD table.
     * Enters and returns with no page-table lock held; takes {@code page_table_lock} inside.
     */
    public int pmdAlloc(long pudEntry) {
        return populate(pudEntry, PMD);
    }

    /**
     * {@code __pte_alloc}: makes the PMD entry at {@code pmdEntry} point at a PTE table, under
     * the PMD table's lock ({@code pmd_lock}). Enters and returns with no page-table lock held.
     * Returns {@link #OK} also when the entry is no longer empty (another table or a huge PMD
     * won); the caller re-reads it.
     */
    public int pteAlloc(long pmdEntry) {
        return populate(pmdEntry, PTE);
    }

    /**
     * The populate protocol for the entry at {@code entry} and a new table of {@code level}: the
     * parent entry of a PTE table is guarded by its PMD table's lock, every other by
     * {@code page_table_lock}.
     */
    private int populate(long entry, int level) {
        if (entries.getAcquire(entry) != 0) {
            return OK;
        }
        long table = allocTable(level);
        if (table == FrameAllocator.NO_FRAME) {
            return ENOMEM;
        }
        long ptl = level == PTE ? mm.ptl.pmdLock(Entries.tableOf(entry)) : mm.ptl.pageTableLock();
        if (entries.getPlain(entry) == 0) {
            // Release: the zeroed, constructed table (and its lock) before the entry; pairs with
            // the acquire loads of pteOffsetMapLock and of every lockless walker.
            entries.setRelease(entry, Pte.mkTable(table));
            table = FrameAllocator.NO_FRAME;
        }
        mm.ptl.unlock(ptl);
        if (table != FrameAllocator.NO_FRAME) {
            mm.counters.tableRacesLost.increment();
            freeTable(table, level);
        }
        return OK;
    }
}
