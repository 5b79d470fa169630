package dev.offmm.core.fault;

import dev.offmm.core.Prot;
import dev.offmm.core.event.OomEvent;
import dev.offmm.core.huge.HugeFault;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.mm.VmCounters;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PgtableAlloc;
import dev.offmm.core.pgtable.PtlHelpers;
import dev.offmm.core.pgtable.PtlSlot;
import dev.offmm.core.pgtable.Pte;
import dev.offmm.core.reclaim.FrameSource;
import dev.offmm.core.unmap.MmuGather;
import dev.offmm.core.unmap.Zap;
import dev.offmm.core.vma.Vma;
import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.frame.FrameAllocator;
import dev.offmm.offheap.page.MemMap;

import java.lang.foreign.MemorySegment;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;

/**
 * {@code handle_mm_fault} for anonymous private memory. Returns result codes ({@code VM_FAULT_*}
 * style); nothing on this path allocates a Java object, boxes or captures a stack trace.
 *
 * <p>Every entry point is called with the VMA read-locked (or mmap_lock held for read or write)
 * and no page-table lock held, and returns the same way. Pages are allocated and zeroed before
 * any page-table lock is taken; the PTE is then rechecked under the lock ({@code pte_none} or
 * unchanged) and set with a release store. A loser frees what it allocated. No path leaves a
 * half-built table or leaks a frame.
 */
public final class FaultHandler {
    /** Resolved. */
    public static final int OK = HugeFault.OK;
    /** No VMA at the address. */
    public static final int MAPERR = 1;
    /** The VMA forbids the access. */
    public static final int ACCERR = 2;
    /** No memory for a page or a table. */
    public static final int OOM = HugeFault.OOM;
    private static final int RETRY = HugeFault.RETRY;
    /** The PTE table is shared with another address space: unshare it and fault again. */
    public static final int UNSHARE = 6;

    private static final long ZERO_PTE = Pte.mkZero(PhysicalMemory.ZERO_PFN);

    private final Mm mm;
    private final Entries entries;
    private final PgtableAlloc pgtables;
    private final PtlHelpers ptl;
    private final FrameSource pages;
    private final MemMap map;
    private final HugeFault huge;
    private final MemorySegment region;
    private final Zap zap;
    /** Fault slots holding pages their copy-on-write faults replaced; guarded by itself. */
    private final Set<PtlSlot> holders = Collections.newSetFromMap(new IdentityHashMap<>());

    /**
     * The fault handler of {@code mm}: tables populated through {@code pgtables}, locked with
     * {@code ptl}, data pages from {@code pages}, 2 MiB pages through {@code huge}.
     */
    public FaultHandler(Mm mm, Entries entries, PgtableAlloc pgtables, PtlHelpers ptl, FrameSource pages, MemMap map,
                        HugeFault huge, MemorySegment region, Zap zap) {
        this.mm = mm;
        this.region = region;
        this.zap = zap;
        this.huge = huge;
        this.entries = entries;
        this.pgtables = pgtables;
        this.ptl = ptl;
        this.pages = pages;
        this.map = map;
    }

    /**
     * Resolves a fault at {@code va} inside {@code vma}. Enters and returns with {@code vma}
     * read-locked (or mmap_lock held) and no page-table lock held.
     */
    public int handleMmFault(Vma vma, long va, boolean write, PtlSlot slot) {
        // An unshare fault (for a pin) needs only read access: it copies the page, not a permission.
        if (write && !slot.unshare ? !Prot.writable(vma.prot) : !Prot.readable(vma.prot)) {
            slot.counts.increment(VmCounters.FAULT_ACCERR);
            return ACCERR;
        }
        int r;
        do {
            r = walkAndFault(vma, va, write, slot);
        } while (r == RETRY);
        if (r == OOM) {
            slot.counts.increment(VmCounters.FAULT_OOM);
            OomEvent.emit("fault", mm.id(), va, write, mm.memory());
        }
        return r;
    }

    /**
     * Down to the PMD entry, which is read once: a hugetlb VMA, an empty entry where a THP may
     * go (write faults only), or a huge entry are handled at this level; anything else, or a
     * THP fallback, goes on to the PTE.
     */
    private int walkAndFault(Vma vma, long va, boolean write, PtlSlot slot) {
        long pmdE = pgtables.pmdAlloc(mm.pgd(), va, slot.counts);
        if (pmdE < 0) {
            return OOM;
        }
        if (vma.hugetlb()) {
            return huge.hugetlb(vma, pmdE, write, slot.counts);
        }
        long pmd = entries.getAcquire(pmdE);
        if (Pte.none(pmd) && write && huge.thpSuitable(vma, va)) {
            int r = huge.anonymous(vma, pmdE, slot.counts);
            if (r != HugeFault.FALLBACK) {
                return r;
            }
        } else if (Pte.huge(pmd)) {
            return huge.onHuge(vma, pmdE, pmd, write, slot.counts);
        } else if (Pte.sharedTable(pmd)) {
            // A table shared after a fork is changed by no space: a read of a present page was
            // spurious, anything else unshares first (TableShare).
            if (!write && !slot.unshare && Pte.present(entries.getAcquire(Entries.pteOffset(pmd, va)))) {
                slot.counts.increment(VmCounters.FAULT_SPURIOUS);
                return OK;
            }
            return UNSHARE;
        }
        if (pgtables.pteAlloc(pmdE, slot.counts) != PgtableAlloc.OK) {
            return OOM;
        }
        return handlePteFault(vma, pmdE, va, write, slot);
    }

    /** {@code handle_pte_fault}: reads the PTE locklessly, then takes its lock only to change it. */
    private int handlePteFault(Vma vma, long pmdE, long va, boolean write, PtlSlot slot) {
        long pte = ptl.pteOffsetMapRwNolock(pmdE, va, slot);
        if (pte < 0) {
            return RETRY;
        }
        long entry = entries.getAcquire(pte);
        if (Pte.none(entry)) {
            return write ? doAnonymousWrite(vma, pmdE, pte, slot) : doAnonymousRead(pmdE, pte, slot);
        }
        if (!Pte.present(entry)) {
            // PROT_NONE leaf in a VMA that allows the access: mprotect is changing it right now
            // under mmap_lock held for write, which a fault holding the VMA lock cannot see.
            throw new IllegalStateException("PROT_NONE entry 0x" + Long.toHexString(entry)
                    + " in a VMA with " + Prot.toString(vma.prot) + " at 0x" + Long.toHexString(va));
        }
        if (write && !Pte.writable(entry)) {
            return Pte.zero(entry) ? doCow(vma, pmdE, pte, entry, slot) : doWp(vma, pmdE, pte, entry, slot);
        }
        if (slot.unshare && Pte.ownsFrame(entry) && map.mapcountVolatile(Pte.pfn(entry)) != 1) {
            return doWp(vma, pmdE, pte, entry, slot);
        }
        slot.counts.increment(VmCounters.FAULT_SPURIOUS);
        return OK;
    }

    /**
     * Whether {@code va} is mapped by a huge entry now (acquire loads). For a caller that holds
     * mmap_lock, so the tables it reads stay.
     */
    public boolean mappedHuge(long va) {
        long pmdE = entries.lookupPmd(mm.pgd(), va);
        return pmdE >= 0 && Pte.huge(entries.getAcquire(pmdE));
    }

    /** Takes the PTE lock and rechecks that the PMD still names the table the PTE was read from. */
    private boolean lockAndRecheckPmd(long pmdE, PtlSlot slot) {
        ptl.lockPte(slot.ptl);
        if (entries.getAcquire(pmdE) != slot.pmdval) {
            ptl.unlock(slot.ptl);
            return false;
        }
        return true;
    }

    private int doAnonymousRead(long pmdE, long pte, PtlSlot slot) {
        if (!lockAndRecheckPmd(pmdE, slot)) {
            return RETRY;
        }
        if (Pte.none(entries.getPlain(pte))) {
            entries.setRelease(pte, ZERO_PTE);
            slot.counts.increment(VmCounters.FAULT_ZERO);
        } else {
            slot.counts.increment(VmCounters.FAULT_SPURIOUS);
        }
        ptl.unlock(slot.ptl);
        return OK;
    }

    private int doAnonymousWrite(Vma vma, long pmdE, long pte, PtlSlot slot) {
        long pfn = allocZeroedPage();
        if (pfn == FrameAllocator.NO_FRAME) {
            return OOM;
        }
        if (!lockAndRecheckPmd(pmdE, slot)) {
            freeUnused(pfn);
            return RETRY;
        }
        if (!Pte.none(entries.getPlain(pte))) {
            ptl.unlock(slot.ptl);
            freeUnused(pfn);
            slot.counts.increment(VmCounters.FAULT_SPURIOUS);
            return OK;
        }
        installPage(vma, pte, pfn, slot);
        ptl.unlock(slot.ptl);
        slot.counts.increment(VmCounters.FAULT_ANON);
        return OK;
    }

    /** {@code wp_page_copy} from the zero page: a fresh zeroed page replaces it. */
    private int doCow(Vma vma, long pmdE, long pte, long entry, PtlSlot slot) {
        long pfn = allocZeroedPage();
        if (pfn == FrameAllocator.NO_FRAME) {
            return OOM;
        }
        if (!lockAndRecheckPmd(pmdE, slot)) {
            freeUnused(pfn);
            return RETRY;
        }
        if (entries.getPlain(pte) != entry) {
            ptl.unlock(slot.ptl);
            freeUnused(pfn);
            return RETRY;
        }
        installPage(vma, pte, pfn, slot);
        // Contexts may hold the read-only zero-page translation: shoot it down before unlocking,
        // or they would keep reading zeros after this write.
        mm.flushTlb();
        ptl.unlock(slot.ptl);
        slot.counts.increment(VmCounters.FAULT_COW);
        return OK;
    }

    /**
     * {@code do_wp_page} on a present page mapped read-only: reused in place if this mapping is
     * its only one ({@code wp_page_reuse}), else copied ({@code wp_page_copy}): the page is shared
     * copy-on-write with another address space after a fork. The decision is the page's mapcount,
     * read again under the PTE lock; a mapping that another space let go of counts until that
     * space's grace period ends (see MmuGather#removePage), so a late reader there never sees
     * this space's writes. The copy is made before the lock, from a page the recheck then proves
     * was still mapped.
     */
    private int doWp(Vma vma, long pmdE, long pte, long entry, PtlSlot slot) {
        long old = Pte.pfn(entry);
        if (map.mapcountVolatile(old) == 1) {
            return doReuse(vma, pmdE, pte, entry, slot, FrameAllocator.NO_FRAME);
        }
        long pfn = pages.alloc();
        if (pfn == FrameAllocator.NO_FRAME && slot.replacedCount > 0) {
            // Under pressure, the pages this context's earlier copies replaced go back first.
            retireReplaced(slot);
            pfn = pages.alloc();
            slot.counts.increment(VmCounters.COW_RECLAIM_RETRIES);
        }
        if (pfn == FrameAllocator.NO_FRAME) {
            return OOM;
        }
        MemorySegment.copy(region, Entries.physical(old, 0), region, Entries.physical(pfn, 0), Entries.PAGE_SIZE);
        if (!lockAndRecheckPmd(pmdE, slot)) {
            freeUnused(pfn);
            return RETRY;
        }
        if (entries.getPlain(pte) != entry) {
            ptl.unlock(slot.ptl);
            freeUnused(pfn);
            return RETRY;
        }
        if (map.mapcountVolatile(old) == 1) {
            // The other mappings went away while the copy was made.
            ptl.unlock(slot.ptl);
            return doReuse(vma, pmdE, pte, entry, slot, pfn);
        }
        installPage(vma, pte, pfn, slot);
        // The copy replaces a page: the table maps as many as before.
        map.addPtePagesPlain(Entries.tableOf(pte), -1);
        // Contexts hold the read-only translation of the old page: shoot it down before the lock
        // drops. Its mapcount and reference go after this context's grace period.
        mm.flushTlb();
        ptl.unlock(slot.ptl);
        slot.counts.add(VmCounters.RSS, -1);
        slot.counts.increment(VmCounters.FAULT_COW_COPY);
        if (slot.replacedCount == 0) {
            holding(slot, true);
        }
        slot.replaced[slot.replacedCount++] = old;
        if (slot.replacedCount == PtlSlot.REPLACED_BATCH) {
            retireReplaced(slot);
        }
        return OK;
    }

    /**
     * Hands the pages {@code slot}'s copy-on-write faults replaced to the reclaimer, whose grace
     * period covers every context of this space. Called when the batch fills, and when its
     * context idles or closes, so no context hides more than {@link PtlSlot#REPLACED_BATCH} pages.
     */
    public void retireReplaced(PtlSlot slot) {
        MmuGather tlb;
        synchronized (slot) {
            if (slot.replacedCount == 0) {
                return;
            }
            tlb = zap.gather();
            for (int i = 0; i < slot.replacedCount; i++) {
                tlb.removeReplacedPage(slot.replaced[i]);
            }
            slot.replacedCount = 0;
            holding(slot, false);
        }
        tlb.finish();
    }

    /**
     * At close, once no fault runs (the VMAs are write-locked and gone): retires what every
     * context still holds, so the space's {@code check_mm} sees every page back. A context's
     * stores to its slot happen before its fault's VMA unlock, which close's VMA lock waited for.
     */
    public void retireAllReplaced() {
        PtlSlot[] all;
        synchronized (holders) {
            all = holders.toArray(new PtlSlot[0]);
        }
        for (PtlSlot s : all) {
            retireReplaced(s);
        }
    }

    /** Tracks the fault slots that hold replaced pages (a set change per batch of them, off the per-fault path). */
    private void holding(PtlSlot slot, boolean holds) {
        synchronized (holders) {
            if (holds) {
                holders.add(slot);
            } else {
                holders.remove(slot);
            }
        }
    }

    /**
     * {@code wp_page_reuse}: the page is this mapping's alone (an exclusive page made read-only
     * by mprotect, or the last mapping of one shared after a fork): it becomes writable in place
     * (or, for an unshare fault in a read-only VMA, stays as it is). Frees {@code unused}.
     */
    private int doReuse(Vma vma, long pmdE, long pte, long entry, PtlSlot slot, long unused) {
        if (!lockAndRecheckPmd(pmdE, slot)) {
            freeIfAny(unused);
            return RETRY;
        }
        if (entries.getPlain(pte) != entry || map.mapcountVolatile(Pte.pfn(entry)) != 1) {
            ptl.unlock(slot.ptl);
            freeIfAny(unused);
            return RETRY;
        }
        if (Prot.writable(vma.prot)) {
            entries.setRelease(pte, entry | Pte.WRITE | Pte.DIRTY | Pte.ACCESSED);
        }
        ptl.unlock(slot.ptl);
        freeIfAny(unused);
        slot.counts.increment(VmCounters.FAULT_REUSE);
        return OK;
    }

    private void freeIfAny(long pfn) {
        if (pfn != FrameAllocator.NO_FRAME) {
            freeUnused(pfn);
        }
    }

    /** Called with the PTE lock held and the entry rechecked. */
    private void installPage(Vma vma, long pte, long pfn, PtlSlot slot) {
        map.addAndGetMapcount(pfn, 1);
        map.addPtePagesPlain(Entries.tableOf(pte), 1);
        VmCounters.Local c = slot.counts;
        c.increment(VmCounters.RSS);
        c.increment(VmCounters.FRAMES_HELD);
        c.increment(VmCounters.PAGES_ALLOCATED);
        // Release: the zeroed page before the entry; pairs with walkers' acquire loads.
        entries.setRelease(pte, Pte.mkPage(pfn, Pte.protBits(true, Prot.writable(vma.prot))));
    }

    private long allocZeroedPage() {
        return pages.allocZeroed();
    }

    private void freeUnused(long pfn) {
        pages.free(pfn);
    }
}
