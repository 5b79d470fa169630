package dev.offmm.core.pgtable;

import dev.offmm.core.VmException;
import dev.offmm.core.mm.VmCounters;
import dev.offmm.core.reclaim.FrameSource;
import dev.offmm.offheap.frame.FrameAllocator;
import dev.offmm.offheap.inject.FailPoints;
import dev.offmm.offheap.inject.FailSite;
import dev.offmm.offheap.LockClass;
import dev.offmm.offheap.lock.PtLocks;
import dev.offmm.offheap.page.MemMap;

/**
 * Page-table frames of one address space: allocation, constructors and destructors
 * ({@code pagetable_pte_ctor} / {@code pagetable_pmd_ctor} and their {@code _dtor}s), and the PGD
 * with the {@code page_table_lock} in its ptl word.
 *
 * <p>A constructor allocates the table's split lock (in debug mode a lock record, which can fail),
 * types the struct page and stamps the owner; a destructor undoes each step. {@link #freeTable}
 * is the only way a table frame goes back, and it always runs the destructor: on a lost populate
 * race, after an mmu_gather's grace period, and at teardown. No lock is taken or held here.
 */
public final class TableAlloc {
    private final Entries entries;
    private final MemMap map;
    private final FrameSource source;
    private final PtLocks ptLocks;
    private final FailPoints failPoints;
    private final VmCounters counters;
    private final long owner;
    private final boolean splitPte;
    private final boolean splitPmd;

    /**
     * Tables owned by address space {@code owner}, from {@code source}; PTE / PMD tables carry
     * their own lock when {@code splitPte} / {@code splitPmd}.
     */
    public TableAlloc(Entries entries, MemMap map, FrameSource source, PtLocks ptLocks, FailPoints failPoints,
                      VmCounters counters, long owner, boolean splitPte, boolean splitPmd) {
        this.entries = entries;
        this.map = map;
        this.source = source;
        this.ptLocks = ptLocks;
        this.failPoints = failPoints;
        this.counters = counters;
        this.owner = owner;
        this.splitPte = splitPte;
        this.splitPmd = splitPmd;
    }

    /**
     * Allocates the PGD and constructs {@code page_table_lock} in its ptl word (the PGD frame's
     * lock word is otherwise unused, so the mm lock lives there and every lock is a handle of the
     * same kind).
     *
     * @throws VmException ENOMEM if the frame or the lock cannot be allocated
     */
    public long allocPgd() {
        long pfn = failPoints.shouldFail(FailSite.PAGE_TABLE) ? FrameAllocator.NO_FRAME : source.allocZeroed();
        if (pfn == FrameAllocator.NO_FRAME) {
            throw new VmException(VmException.Code.ENOMEM, "no frame for the PGD");
        }
        if (!ptLocks.ptlockInit(pfn, LockClass.PAGE_TABLE_LOCK)) {
            source.free(pfn);
            throw new VmException(VmException.Code.ENOMEM, "no lock for page_table_lock");
        }
        map.setOwnerPlain(pfn, owner);
        map.setTypeRelease(pfn, MemMap.TYPE_PGD_TABLE);
        counters.increment(VmCounters.FRAMES_HELD);
        return pfn;
    }

    /** Destroys and frees the PGD; it must be empty and {@code page_table_lock} not held. */
    public void freePgd(long pfn) {
        if (!entries.tableEmpty(pfn)) {
            throw new IllegalStateException("freeing a PGD that still has entries");
        }
        ptLocks.ptlockFree(pfn);
        map.setTypeRelease(pfn, MemMap.TYPE_NONE);
        source.free(pfn);
        counters.add(VmCounters.FRAMES_HELD, -1);
    }

    /**
     * Allocates, zeroes and constructs a table of {@code level} ({@link Entries#PUD},
     * {@link Entries#PMD} or {@link Entries#PTE}); no lock is held or taken. Returns
     * {@link FrameAllocator#NO_FRAME} if the frame or the constructor failed, with nothing leaked.
     * Counts into the caller's {@code counts}: table allocation is on the fault path.
     */
    public long allocTable(int level, VmCounters.Local counts) {
        if (failPoints.shouldFail(FailSite.PAGE_TABLE)) {
            return FrameAllocator.NO_FRAME;
        }
        long pfn = source.allocZeroed();
        if (pfn == FrameAllocator.NO_FRAME) {
            return FrameAllocator.NO_FRAME;
        }
        if (!ctor(pfn, level, counts)) {
            source.free(pfn);
            return FrameAllocator.NO_FRAME;
        }
        counts.increment(VmCounters.FRAMES_HELD);
        counts.increment(VmCounters.TABLES_ALLOCATED);
        return pfn;
    }

    /**
     * Destroys (destructor: frees the split lock, clears the type) and frees a table of
     * {@code level}. The table must be unlinked, empty, and unreachable by lockless walkers.
     * Counts into the shared totals: frees run after grace periods, off the fault path.
     */
    public void freeTable(long pfn, int level) {
        dtor(pfn, level);
        counters.add(tableCounter(level), -1);
        source.free(pfn);
        counters.add(VmCounters.FRAMES_HELD, -1);
        counters.increment(VmCounters.TABLES_FREED);
    }

    /**
     * A table of {@code level} was unlinked from its parent entry: it no longer counts as one of
     * the mm's tables ({@code mm_dec_nr_ptes} in {@code free_pte_range}), although its frame comes
     * back only after the grace period, through {@link #freeUnlinkedTable}.
     */
    public void unlinked(int level) {
        counters.add(tableCounter(level), -1);
    }

    /** {@link #freeTable} for a table already uncounted by {@link #unlinked}. */
    public void freeUnlinkedTable(long pfn, int level) {
        dtor(pfn, level);
        source.free(pfn);
        counters.add(VmCounters.FRAMES_HELD, -1);
        counters.increment(VmCounters.TABLES_FREED);
    }

    /** Counts {@code n} more entries owning a frame in PTE table {@code pfn} (see {@link MemMap#ptePagesPlain}). */
    public void countPages(long pfn, long n) {
        map.addPtePagesPlain(pfn, n);
    }

    /**
     * A shared PTE table whose last user is now this space: stamps it with this space's identity,
     * so that its destructor, run by this space, finds its own table. Called under the table's lock.
     */
    public void adopt(long pfn) {
        map.setOwnerPlain(pfn, owner);
    }

    /**
     * {@code pgtable_trans_huge_deposit}: keeps PTE table {@code pteTable} (constructed, empty,
     * counted as one of the mm's tables) in the struct page of PMD table {@code pmdTable}, for
     * the split of a huge entry of that table, which then needs no allocation and cannot fail.
     * A FIFO list, as in the kernel: head in the PMD table's {@code pmd_huge_pte} word, links in
     * the deposited tables' list words (the head's {@code prev} names the tail); each stored as
     * {@code pfn + 1}, 0 for none. Called with the PMD table's lock held.
     */
    public void deposit(long pmdTable, long pteTable) {
        long head = map.privatePlain(pmdTable);
        map.setNextPlain(pteTable, 0);
        if (head == 0) {
            map.setPrevPlain(pteTable, pteTable + 1);
            map.setPrivatePlain(pmdTable, pteTable + 1);
        } else {
            long tail = map.prevPlain(head - 1) - 1;
            map.setNextPlain(tail, pteTable + 1);
            map.setPrevPlain(head - 1, pteTable + 1);
        }
    }

    /**
     * {@code pgtable_trans_huge_withdraw}: takes the oldest table deposited in PMD table
     * {@code pmdTable}. Called with that table's lock held.
     *
     * @throws IllegalStateException if none is deposited (a huge entry without its table)
     */
    public long withdraw(long pmdTable) {
        long head = map.privatePlain(pmdTable);
        if (head == 0) {
            throw new IllegalStateException("PMD table pfn=" + pmdTable + " has no deposited PTE table");
        }
        long table = head - 1;
        long next = map.nextPlain(table);
        if (next != 0) {
            map.setPrevPlain(next - 1, map.prevPlain(table));
        }
        map.setPrivatePlain(pmdTable, next);
        map.setNextPlain(table, 0);
        map.setPrevPlain(table, 0);
        return table;
    }

    private static int tableCounter(int level) {
        return switch (level) {
            case Entries.PTE -> VmCounters.PTE_TABLES;
            case Entries.PMD -> VmCounters.PMD_TABLES;
            case Entries.PUD -> VmCounters.PUD_TABLES;
            default -> throw badLevel(level);
        };
    }

    private boolean ctor(long pfn, int level, VmCounters.Local counts) {
        switch (level) {
            case Entries.PTE -> {
                if (splitPte && !ptLocks.ptlockInit(pfn, LockClass.PTE)) {
                    return false;
                }
                // No entry owns a frame yet (the word is the table's page count, see MemMap).
                map.setPrivatePlain(pfn, 0);
                map.setTypeRelease(pfn, MemMap.TYPE_PTE_TABLE);
                counts.increment(VmCounters.PTE_TABLES);
            }
            case Entries.PMD -> {
                if (splitPmd && !ptLocks.ptlockInit(pfn, LockClass.PMD)) {
                    return false;
                }
                // pmd_huge_pte: no PTE table deposited yet.
                map.setPrivatePlain(pfn, 0);
                map.setTypeRelease(pfn, MemMap.TYPE_PMD_TABLE);
                counts.increment(VmCounters.PMD_TABLES);
            }
            case Entries.PUD -> {
                map.setTypeRelease(pfn, MemMap.TYPE_PUD_TABLE);
                counts.increment(VmCounters.PUD_TABLES);
            }
            default -> throw badLevel(level);
        }
        map.setOwnerPlain(pfn, owner);
        return true;
    }

    private void dtor(long pfn, int level) {
        int expected = switch (level) {
            case Entries.PTE -> MemMap.TYPE_PTE_TABLE;
            case Entries.PMD -> MemMap.TYPE_PMD_TABLE;
            case Entries.PUD -> MemMap.TYPE_PUD_TABLE;
            default -> throw badLevel(level);
        };
        int type = map.typeAcquire(pfn);
        if (type != expected || map.ownerPlain(pfn) != owner) {
            throw new IllegalStateException("destructor for level " + level + " on pfn=" + pfn + " of type " + type
                    + " owned by mm " + map.ownerPlain(pfn));
        }
        switch (level) {
            case Entries.PTE -> {
                if (map.ptShareCountVolatile(pfn) != 0 || map.ptePagesPlain(pfn) != 0) {
                    throw new IllegalStateException("destructor for PTE table pfn=" + pfn + " that "
                            + map.ptShareCountVolatile(pfn) + " other address spaces still share, with "
                            + map.ptePagesPlain(pfn) + " pages counted in it");
                }
                if (splitPte) {
                    ptLocks.ptlockFree(pfn);
                }
            }
            case Entries.PMD -> {
                if (map.privatePlain(pfn) != 0) {
                    throw new IllegalStateException("destructor for PMD table pfn=" + pfn
                            + " with a deposited PTE table still in it");
                }
                if (splitPmd) {
                    ptLocks.ptlockFree(pfn);
                }
            }
            default -> {
            }
        }
        map.setOwnerPlain(pfn, 0);
        map.setTypeRelease(pfn, MemMap.TYPE_NONE);
    }

    private static IllegalArgumentException badLevel(int level) {
        return new IllegalArgumentException("level=" + level + " (expected PUD, PMD or PTE)");
    }
}
