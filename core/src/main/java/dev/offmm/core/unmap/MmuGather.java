package dev.offmm.core.unmap;

import dev.offmm.core.mm.LongList;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.pgtable.PgtableAlloc;

/**
 * {@code struct mmu_gather}: collects the pages and tables an unmap clears, makes sure the TLB
 * generation is bumped before the lock that guarded a cleared entry is dropped, and hands the
 * batch to the {@link dev.offmm.core.mmu.Reclaimer}, which frees it after a grace period. Tables
 * go through {@link #pteFreeTlb} / {@link #pmdFreeTlb} / {@link #pudFreeTlb} and are destroyed
 * (destructor included) when released, never directly.
 *
 * <p>One gather per operation, confined to the calling thread.
 */
public final class MmuGather {
    private final Mm mm;
    private LongList pages = new LongList(64);
    private LongList tables = new LongList(8);
    private boolean needFlush;
    private long gen;
    /** Resident pages removed and not yet subtracted from the RSS counter (one add per batch). */
    private long rssRemoved;

    /** {@code tlb_gather_mmu}. */
    public MmuGather(Mm mm) {
        this.mm = mm;
        this.gen = mm.tlbGen();
    }

    /** {@code tlb_remove_page}: an order-{@code order} data page whose entry was cleared. */
    public void removePage(long pfn, int order) {
        pages.add(pfn << 4 | order);
        rssRemoved += 1L << order;
        needFlush = true;
    }

    /** Records that a translation changed (protection or a cleared zero-page entry). */
    public void needFlush() {
        needFlush = true;
    }

    /** {@code pte_free_tlb}: a PTE table unlinked from its PMD entry. */
    public void pteFreeTlb(long pfn) {
        tables.add(pfn << 2 | PgtableAlloc.PTE);
        needFlush = true;
    }

    /** {@code pmd_free_tlb}: a PMD table unlinked from its PUD entry (destructor runs at release). */
    public void pmdFreeTlb(long pfn) {
        tables.add(pfn << 2 | PgtableAlloc.PMD);
        needFlush = true;
    }

    /** {@code pud_free_tlb}: a PUD table unlinked from its PGD entry. */
    public void pudFreeTlb(long pfn) {
        tables.add(pfn << 2 | PgtableAlloc.PUD);
        needFlush = true;
    }

    /**
     * {@code tlb_flush_mmu_tlbonly}: bumps the TLB generation if anything was cleared since the
     * last flush. Called with the table lock that guarded the cleared entries still held.
     */
    public void flushTlbLocked() {
        if (rssRemoved != 0) {
            mm.counters.rssPages.add(-rssRemoved);
            rssRemoved = 0;
        }
        if (needFlush) {
            gen = mm.flushTlb();
            needFlush = false;
        }
    }

    /** {@code tlb_finish_mmu}: a last flush, then retire everything gathered. */
    public void finish() {
        flushTlbLocked();
        mm.reclaimer.retire(gen, pages, tables);
        pages = new LongList(64);
        tables = new LongList(8);
    }
}
