package dev.offmm.core.huge;

import dev.offmm.core.event.HugeSplitEvent;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.mm.VmCounters;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PtlHelpers;
import dev.offmm.core.pgtable.Pte;
import dev.offmm.core.pgtable.TableAlloc;
import dev.offmm.offheap.frame.HugeFrames;

/**
 * A huge (2 MiB) PMD entry: its stores and its split ({@code __split_huge_pmd}).
 *
 * <p>One lock guards a huge entry on every path, the lock {@link PtlHelpers#hugePteLock} names
 * (the PMD table's split lock, or {@code page_table_lock} when PMD locks are not split): faults,
 * zap, mprotect, split and collapse all store through {@link #set}, which asserts it. THP and
 * hugetlb entries share it: the kernel's 2024 bug came from hugetlb and core mm taking
 * different locks for one entry.
 *
 * <p>A THP entry has a PTE table deposited in its PMD table's struct page
 * ({@link TableAlloc#deposit}) when it is mapped, so a split allocates nothing and cannot fail.
 * A hugetlb entry has none and is never split: munmap, mprotect and madvise reject ranges that
 * would cut one.
 */
public final class HugePmd {
    private final Mm mm;
    private final Entries entries;
    private final PtlHelpers ptl;
    private final TableAlloc tables;
    private final HugeFrames frames;

    /** The huge entries of {@code mm}. */
    public HugePmd(Mm mm, Entries entries, PtlHelpers ptl, TableAlloc tables, HugeFrames frames) {
        this.mm = mm;
        this.entries = entries;
        this.ptl = ptl;
        this.tables = tables;
        this.frames = frames;
    }

    /** The 2 MiB frames. */
    public HugeFrames frames() {
        return frames;
    }

    /**
     * Stores {@code value} into the PMD entry at {@code pmdEntry} with release (after the frame's
     * zeros, or the split table's entries), which is, was, or becomes huge. Asserts the lock.
     */
    public void set(long pmdEntry, long value) {
        ptl.assertHugeLocked(pmdEntry);
        entries.setRelease(pmdEntry, value);
    }

    /**
     * Splits the huge THP entry at {@code pmdEntry} into a PTE table: withdraws the deposited
     * table, fills its 512 PTEs from the huge frame (same protection and dirty bit), retypes the
     * frame as 512 order-0 pages ({@link HugeFrames#split}: their counts are already per page),
     * installs the table with a release store and bumps the TLB generation before the lock drops.
     *
     * <p>The pattern of the vmemmap split fix (seed 003): the entry read before the call is only
     * a hint; under the lock it is read again, and if another thread split (or zapped) it
     * meanwhile there is nothing left to do. Walkers read the entry once and either see the leaf
     * (and do not descend) or the finished table. Takes and drops the PMD lock; callers hold
     * mmap_lock (read or write), which keeps the PMD table alive.
     *
     * @param pmdEntry the PMD entry's address
     * @param va       an address inside the huge page (for the JFR event)
     * @param cause    why, for the JFR event: zap, fork or probe
     * @return whether this call split it
     * @throws IllegalStateException on a hugetlb entry, which never splits
     */
    public boolean split(long pmdEntry, long va, String cause) {
        boolean split = splitLocked(pmdEntry);
        if (split) {
            // After the lock: the event's commit (a stack trace) holds no one up.
            HugeSplitEvent.emit(cause, mm.id(), va & ~Entries.PMD_MASK);
        }
        return split;
    }

    private boolean splitLocked(long pmdEntry) {
        long lock = ptl.pmdLock(Entries.tableOf(pmdEntry));
        try {
            long pmd = entries.getPlain(pmdEntry);
            if (!Pte.huge(pmd)) {
                return false;
            }
            if (Pte.hugetlb(pmd)) {
                throw new IllegalStateException("splitting hugetlb entry 0x" + Long.toHexString(pmd)
                        + " at 0x" + Long.toHexString(pmdEntry) + ": hugetlb pages are never split");
            }
            long table = tables.withdraw(Entries.tableOf(pmdEntry));
            // The table is no walker's yet: plain stores, published by the release below.
            for (int i = 0; i < HugeFrames.NR; i++) {
                entries.setPlain(Entries.entry(table, i), Pte.subpage(pmd, i));
            }
            tables.countPages(table, HugeFrames.NR);
            frames.split(Pte.pfn(pmd));
            set(pmdEntry, Pte.mkTable(table));
            // Contexts may hold the 2 MiB translation: shoot it down before the lock drops, so no
            // one uses it once the PTEs below start to change.
            mm.flushTlb();
            VmCounters c = mm.counters();
            c.add(VmCounters.HUGE_PAGES, -1);
            c.increment(VmCounters.THP_SPLIT);
            return true;
        } finally {
            ptl.unlock(lock);
        }
    }
}
