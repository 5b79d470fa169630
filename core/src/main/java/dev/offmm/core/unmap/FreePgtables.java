package dev.offmm.core.unmap;

import dev.offmm.core.mm.Mm;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PtlHelpers;
import dev.offmm.core.pgtable.Pte;

/**
 * {@code free_pgtables}: frees the page tables that an unmap left empty. A table is freed when
 * every address it maps lies in {@code [floor, ceiling)} (the gap between the VMAs left around
 * the unmapped range) and part of it in {@code [start, end)}. Each is unlinked under the lock
 * that guards its parent entry and gathered ({@code pte_free_tlb} and friends); its destructor
 * runs when the gather is released after its grace period.
 *
 * <p>The caller holds mmap_lock for write and has zapped every leaf in the range.
 */
public final class FreePgtables {
    private final Mm mm;
    private final Entries entries;
    private final PtlHelpers ptl;

    /** Frees tables of {@code mm}. */
    public FreePgtables(Mm mm, Entries entries, PtlHelpers ptl) {
        this.mm = mm;
        this.entries = entries;
        this.ptl = ptl;
    }

    /** Frees the tables of {@code [start, end)} that map only addresses in {@code [floor, ceiling)}. */
    public void freePgtables(MmuGather tlb, long start, long end, long floor, long ceiling) {
        freeBelow(tlb, mm.pgd(), Entries.PGD, start, Math.min(end, Entries.USER_END), floor, ceiling);
    }

    /**
     * One level of the walk: for each entry of {@code table} (of {@code level}) that covers part
     * of {@code [start, end)} and names a table, frees the tables below that one first, then
     * that table itself if it maps only addresses in {@code [floor, ceiling)}.
     */
    private void freeBelow(MmuGather tlb, long table, int level, long start, long end, long floor, long ceiling) {
        long size = Entries.size(level);
        for (long addr = start & -size; addr < end; addr += size) {
            long entry = Entries.offset(table, addr, level);
            long value = entries.getAcquire(entry);
            if (!Pte.table(value)) {
                continue;
            }
            long child = Pte.pfn(value);
            if (level < Entries.PMD) {
                freeBelow(tlb, child, level + 1, Math.max(addr, start), Math.min(addr + size, end), floor, ceiling);
            }
            if (floor <= addr && addr + size <= ceiling) {
                unlink(entry, child, level);
                tlb.freeTlb(child, level + 1);
            }
        }
    }

    /**
     * Clears the level-{@code level} entry that names the empty table {@code child}, under the
     * lock that guards that entry: the PMD table's lock for a PMD entry, else page_table_lock.
     */
    private void unlink(long entry, long child, int level) {
        if (!entries.tableEmpty(child)) {
            throw new IllegalStateException("free_pgtables: table pfn=" + child + " still has entries");
        }
        long lock = level == Entries.PMD ? ptl.pmdLock(Entries.tableOf(entry)) : ptl.pageTableLock();
        try {
            entries.setRelease(entry, 0);
        } finally {
            ptl.unlock(lock);
        }
    }
}
