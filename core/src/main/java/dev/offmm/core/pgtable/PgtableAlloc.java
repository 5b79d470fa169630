package dev.offmm.core.pgtable;

import dev.offmm.core.mm.VmCounters;
import dev.offmm.offheap.frame.FrameAllocator;

/**
 * The populate protocol of {@code __pud_alloc} / {@code __pmd_alloc} / {@code __pte_alloc}, the
 * same at every level:
 * <ol>
 *   <li>allocate and zero a frame and run its constructor, outside any lock (the constructor
 *       allocates the debug lock and can fail: the caller gets {@link #ENOMEM});</li>
 *   <li>take the lock that guards the parent entry and recheck that it is still empty;</li>
 *   <li>publish with a release store (pairing with walkers' acquire loads), unlock;</li>
 *   <li>if another thread won, destroy and free ours.</li>
 * </ol>
 * The parent entry of a PTE table is guarded by its PMD table's lock ({@code pmd_lock}); PGD and
 * PUD entries by {@code page_table_lock}.
 */
public final class PgtableAlloc {
    /** Success. */
    public static final int OK = 0;
    /** No memory for a table or its lock. */
    public static final int ENOMEM = -12;

    private final TableAlloc tables;
    private final PtlHelpers ptl;
    private final Entries entries;

    /**
     * Populates through {@code tables}, locking with {@code ptl}; each call counts into the
     * caller's {@link VmCounters.Local}.
     */
    public PgtableAlloc(TableAlloc tables, PtlHelpers ptl, Entries entries) {
        this.tables = tables;
        this.ptl = ptl;
        this.entries = entries;
    }

    /**
     * {@code __pte_alloc}: makes the PMD entry at {@code pmdEntry} point at a PTE table, under
     * the PMD table's lock. Enters and returns with no page-table lock held. {@link #OK} also
     * when the entry is no longer empty (another thread won); the caller re-reads it.
     */
    public int pteAlloc(long pmdEntry, VmCounters.Local counts) {
        return populate(pmdEntry, Entries.PTE, counts);
    }

    /**
     * The descent that allocates ({@code pud_alloc(pgd_offset(..))}, then {@code pmd_alloc}): the
     * PMD entry of {@code va}, creating the PUD and PMD tables above it as needed. Returns the
     * entry's address, or -1 if a table could not be allocated. Enters and returns with no
     * page-table lock held; the caller keeps the tables alive (VMA lock or mmap_lock).
     */
    public long pmdAlloc(long pgdPfn, long va, VmCounters.Local counts) {
        long entry = Entries.pgdOffset(pgdPfn, va);
        for (int level = Entries.PGD; level < Entries.PMD; level++) {
            long value = entries.getAcquire(entry);
            if (Pte.none(value)) {
                if (populate(entry, level + 1, counts) != OK) {
                    return -1;
                }
                value = entries.getAcquire(entry);
            }
            entry = Entries.offset(Pte.pfn(value), va, level + 1);
        }
        return entry;
    }

    /**
     * The protocol for the entry at {@code entry} and a new table of {@code level} (the level of
     * the new table's entries).
     */
    private int populate(long entry, int level, VmCounters.Local counts) {
        if (!Pte.none(entries.getAcquire(entry))) {
            return OK;
        }
        long table = tables.allocTable(level, counts);
        if (table == FrameAllocator.NO_FRAME) {
            return ENOMEM;
        }
        long lock = level == Entries.PTE ? ptl.pmdLock(Entries.tableOf(entry)) : ptl.pageTableLock();
        if (Pte.none(entries.getPlain(entry))) {
            // Release: the zeroed, constructed table (and its lock) before the entry; pairs with
            // the acquire loads of pteOffsetMapLock and of every lockless walker.
            entries.setRelease(entry, Pte.mkTable(table));
            table = FrameAllocator.NO_FRAME;
        }
        ptl.unlock(lock);
        if (table != FrameAllocator.NO_FRAME) {
            counts.increment(VmCounters.TABLE_RACES_LOST);
            tables.freeTable(table, level);
        }
        return OK;
    }
}
