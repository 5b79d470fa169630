package dev.offmm.core.unmap;

import dev.offmm.core.mm.Mm;
import dev.offmm.core.mm.VmCounters;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.TableAlloc;
import dev.offmm.core.reclaim.Reclaimer;
import dev.offmm.offheap.frame.FrameAllocator;
import dev.offmm.offheap.frame.FrameCache;
import dev.offmm.offheap.page.MemMap;

/**
 * {@code struct mmu_gather}: collects the pages and tables an unmap clears, makes sure the TLB
 * generation is bumped before the lock that guarded a cleared entry is dropped, and retires
 * itself to the {@link Reclaimer}, which releases it after a grace period. Tables go through
 * {@link #pteFreeTlb} / {@link #pmdFreeTlb} / {@link #pudFreeTlb} and are destroyed (destructor
 * included) when released, never directly.
 *
 * <p>One gather per operation ({@link Zap#gather()}), confined to the calling thread until
 * {@link #finish()}; after that it belongs to the reclaimer.
 */
public final class MmuGather implements Reclaimer.Batch {
    private static final int ORDER_BITS = 4;
    private static final int LEVEL_BITS = 2;

    private final Mm mm;
    private final VmCounters counters;
    private final Reclaimer reclaimer;
    private final FrameAllocator frames;
    private final TableAlloc tables;
    private final MemMap map;
    /** Order-0 pages, by pfn. */
    private final LongList pages = new LongList(512);
    /** Pages of higher orders, as {@code pfn << ORDER_BITS | order}. */
    private final LongList hugePages = new LongList(4);
    /** The unmapping thread's frame cache: where the pages go back after the grace period. */
    private final FrameCache home;
    /** Tables as {@code pfn << LEVEL_BITS | level}. */
    private final LongList tableList = new LongList(8);
    private boolean needFlush;
    private long gen;
    /** Resident pages removed and not yet subtracted from the RSS counter (one add per batch). */
    private long rssRemoved;

    /** {@code tlb_gather_mmu}. */
    MmuGather(Mm mm, Reclaimer reclaimer, FrameAllocator frames, TableAlloc tables, MemMap map) {
        this.mm = mm;
        this.map = map;
        this.counters = mm.counters();
        this.reclaimer = reclaimer;
        this.frames = frames;
        this.tables = tables;
        this.home = frames.currentCache();
        this.gen = mm.tlbGenAcquire();
    }

    /**
     * {@code tlb_remove_page}: an order-{@code order} data page whose entry was cleared. An
     * order-0 page keeps its mapcount until {@link #release}: a page shared copy-on-write with
     * another space must look shared to that space's write faults until no context of this one
     * can still read it, or the other space would reuse it in place under a late reader.
     */
    public void removePage(long pfn, int order) {
        if (order == 0) {
            pages.add(pfn);
        } else {
            hugePages.add(pfn << ORDER_BITS | order);
        }
        rssRemoved += 1L << order;
        needFlush = true;
    }

    /**
     * A page a copy-on-write fault replaced (its entry now names the copy, and the shootdown is
     * done): its mapcount and reference drop after the grace period, and RSS does not change.
     */
    public void removeReplacedPage(long pfn) {
        pages.add(pfn);
    }

    /** Records that a translation changed (protection or a cleared zero-page entry). */
    public void needFlush() {
        needFlush = true;
    }

    /** {@code pte_free_tlb}: a PTE table unlinked from its PMD entry. */
    public void pteFreeTlb(long pfn) {
        freeTlb(pfn, Entries.PTE);
    }

    /** {@code pmd_free_tlb}: a PMD table unlinked from its PUD entry (destructor runs at release). */
    public void pmdFreeTlb(long pfn) {
        freeTlb(pfn, Entries.PMD);
    }

    /** {@code pud_free_tlb}: a PUD table unlinked from its PGD entry. */
    public void pudFreeTlb(long pfn) {
        freeTlb(pfn, Entries.PUD);
    }

    /** A table already uncounted ({@link TableAlloc#unlinked}) and unreachable: destroyed and freed at release. */
    public void freeUnlinkedTable(long pfn, int level) {
        tableList.add(pfn << LEVEL_BITS | level);
    }

    /** A table of {@code level} unlinked from its parent entry: uncounted now, freed at release. */
    void freeTlb(long pfn, int level) {
        tableList.add(pfn << LEVEL_BITS | level);
        tables.unlinked(level);
        needFlush = true;
    }

    /**
     * {@code tlb_flush_mmu_tlbonly}: bumps the TLB generation if anything was cleared since the
     * last flush. Called with the table lock that guarded the cleared entries still held.
     */
    public void flushTlbLocked() {
        if (rssRemoved != 0) {
            counters.add(VmCounters.RSS, -rssRemoved);
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
        reclaimer.retire(gen, this);
    }

    @Override
    public int frames() {
        return pages.size() + hugeFrames() + tableList.size();
    }

    private int hugeFrames() {
        int n = 0;
        for (int i = 0; i < hugePages.size(); i++) {
            n += 1 << (int) (hugePages.get(i) & ((1 << ORDER_BITS) - 1));
        }
        return n;
    }

    /**
     * After the grace period: puts every page (back to the unmapping thread's cache, in one
     * batch) and destroys and frees every table.
     */
    @Override
    public void release() {
        for (int i = 0; i < pages.size(); i++) {
            map.addAndGetMapcount(pages.get(i), -1);
        }
        frames.putFrames(pages.array(), pages.size(), home);
        int n = pages.size() + hugeFrames();
        for (int i = 0; i < hugePages.size(); i++) {
            // Only 2 MiB pages are gathered above order 0: each subpage is counted on its own.
            frames.huge().put(hugePages.get(i) >>> ORDER_BITS, home);
        }
        counters.add(VmCounters.FRAMES_HELD, -n);
        counters.add(VmCounters.PAGES_FREED, n);
        counters.increment(VmCounters.GRACE_PERIODS);
        for (int i = 0; i < tableList.size(); i++) {
            long v = tableList.get(i);
            tables.freeUnlinkedTable(v >>> LEVEL_BITS, (int) (v & ((1 << LEVEL_BITS) - 1)));
        }
    }
}
