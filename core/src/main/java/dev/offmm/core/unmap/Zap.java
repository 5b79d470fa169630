package dev.offmm.core.unmap;

import dev.offmm.core.Prot;
import dev.offmm.core.huge.HugePmd;
import dev.offmm.core.mm.VmCounters;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PtlHelpers;
import dev.offmm.core.pgtable.PtlSlot;
import dev.offmm.core.pgtable.Pte;
import dev.offmm.core.pgtable.TableAlloc;
import dev.offmm.core.reclaim.Reclaimer;
import dev.offmm.offheap.frame.FrameAllocator;
import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.page.PageSize;

/**
 * The leaf work of munmap, madvise(DONTNEED) and mprotect: {@code zap_page_range} and
 * {@code change_protection}, and the gathers they fill.
 *
 * <p>Callers hold mmap_lock: for write (munmap, mprotect, with the affected VMAs write-locked, so
 * no fault runs in the range) or for read (DONTNEED, which faults in the same range may race, as
 * in Linux: they refault zero pages). Faults in neighbouring VMAs may share the tables either
 * way, so every entry is changed under the PTE lock that guards it, and the TLB generation is
 * bumped before that lock is dropped.
 *
 * <p>A huge entry wholly inside the range is zapped or reprotected in place, under the PMD lock
 * ({@code zap_huge_pmd}, {@code change_huge_pmd}); one the range only cuts is split first
 * ({@link HugePmd#split}) and then handled PTE by PTE.
 */
public final class Zap {
    private final Mm mm;
    private final Entries entries;
    private final PtlHelpers ptl;
    private final MemMap map;
    private final Reclaimer reclaimer;
    private final FrameAllocator frames;
    private final TableAlloc tables;
    private final HugePmd huge;

    /** Leaf operations on {@code mm}'s tables; gathers retire to {@code reclaimer}. */
    public Zap(Mm mm, Entries entries, PtlHelpers ptl, MemMap map, Reclaimer reclaimer, FrameAllocator frames,
               TableAlloc tables, HugePmd huge) {
        this.huge = huge;
        this.mm = mm;
        this.entries = entries;
        this.ptl = ptl;
        this.map = map;
        this.reclaimer = reclaimer;
        this.frames = frames;
        this.tables = tables;
    }

    /** Operation on the leaves of one PTE table, under its lock. */
    private interface LeafOp {
        /** Returns the new entry for {@code entry}. */
        long apply(MmuGather tlb, long entry);
    }

    /** Operation on a huge entry wholly inside the range, under the PMD lock. */
    private interface HugeOp {
        /** Returns the new entry for the huge entry {@code entry} at {@code pmdEntry}. */
        long apply(MmuGather tlb, long pmdEntry, long entry);
    }

    /** {@code tlb_gather_mmu}: a new gather for one operation. */
    public MmuGather gather() {
        return new MmuGather(mm, reclaimer, frames, tables, map);
    }

    /** {@code zap_page_range}: clears every leaf in {@code [start, end)}, gathering the pages. */
    public void unmapRange(MmuGather tlb, long start, long end) {
        walkLeaves(tlb, start, end, this::zapLeaf, this::zapHuge);
    }

    /** {@code zap_huge_pmd}: the frame goes to the gather, and the deposited table with it. */
    private long zapHuge(MmuGather tlb, long pmdEntry, long entry) {
        long pfn = Pte.pfn(entry);
        // The entry is its frame's one mapping, and the PMD lock is held: plain stores, not 512 atomics.
        huge.frames().setMapcounts(pfn, 0);
        tlb.removePage(pfn, PageSize.HUGE_ORDER);
        if (!Pte.hugetlb(entry)) {
            tlb.pteFreeTlb(tables.withdraw(Entries.tableOf(pmdEntry)));
        }
        mm.counters().add(VmCounters.HUGE_PAGES, -1);
        return 0;
    }

    private long zapLeaf(MmuGather tlb, long entry) {
        if (Pte.ownsFrame(entry)) {
            // The mapcount drops with the reference, after the grace period (MmuGather#release).
            tlb.removePage(Pte.pfn(entry), 0);
        } else {
            tlb.needFlush();
        }
        return 0;
    }

    /** {@code change_protection}: gives every leaf in {@code [start, end)} protection {@code prot}. */
    public void changeProtection(MmuGather tlb, long start, long end, int prot) {
        boolean r = Prot.readable(prot);
        boolean w = Prot.writable(prot);
        LeafOp op = (t, entry) -> {
            // A page shared copy-on-write stays read-only: its write fault copies or reuses it
            // (the kernel's can_change_pte_writable asks PageAnonExclusive the same question).
            boolean exclusive = !Pte.ownsFrame(entry) || Pte.huge(entry) || map.mapcountVolatile(Pte.pfn(entry)) == 1;
            long updated = Pte.withProt(entry, r, w && exclusive);
            if (updated != entry) {
                t.needFlush();
            }
            return updated;
        };
        walkLeaves(tlb, start, end, op, (t, pmdEntry, entry) -> op.apply(t, entry));
    }

    /**
     * Applies {@code op} to the huge entry at {@code pmdEntry} under its lock, if it is still
     * huge; returns false if it was split meanwhile (by a concurrent DONTNEED), true if it is
     * done (or was zapped meanwhile).
     */
    private boolean changeHuge(MmuGather tlb, long pmdEntry, HugeOp op) {
        long lock = ptl.hugePteLock(pmdEntry);
        try {
            long entry = entries.getPlain(pmdEntry);
            if (!Pte.huge(entry)) {
                return Pte.none(entry);
            }
            long updated = op.apply(tlb, pmdEntry, entry);
            if (updated != entry) {
                huge.set(pmdEntry, updated);
            }
            tlb.flushTlbLocked();
            return true;
        } finally {
            ptl.unlock(lock);
        }
    }

    private void walkLeaves(MmuGather tlb, long start, long end, LeafOp op, HugeOp hugeOp) {
        PtlSlot slot = new PtlSlot();
        long addr = start;
        while (addr < end) {
            long pmdE = entries.lookupPmd(mm.pgd(), addr);
            if (pmdE < 0) {
                addr = Entries.addrEnd(addr, Entries.missingLevel(pmdE), end);
                continue;
            }
            long pmdEnd = Entries.addrEnd(addr, Entries.PMD, end);
            if (Pte.huge(entries.getAcquire(pmdE))) {
                boolean whole = (addr & Entries.PMD_MASK) == 0 && pmdEnd - addr == Entries.PMD_SIZE;
                if (whole && changeHuge(tlb, pmdE, hugeOp)) {
                    addr = pmdEnd;
                    continue;
                }
                if (!whole) {
                    huge.split(pmdE, addr, "zap");
                }
            }
            long pte = ptl.pteOffsetMapLock(pmdE, addr, slot);
            if (pte >= 0) {
                try {
                    if (Pte.sharedTable(slot.pmdval)) {
                        throw new IllegalStateException("zap or mprotect of a shared PTE table at 0x"
                                + Long.toHexString(addr) + ": the caller did not unshare the range first");
                    }
                    for (long a = addr; a < pmdEnd; a += Entries.PAGE_SIZE, pte += Long.BYTES) {
                        long entry = entries.getPlain(pte);
                        if (!Pte.none(entry)) {
                            long updated = op.apply(tlb, entry);
                            if (updated != entry) {
                                entries.setRelease(pte, updated);
                                if (Pte.ownsFrame(entry) && !Pte.ownsFrame(updated)) {
                                    map.addPtePagesPlain(Entries.tableOf(pte), -1);
                                }
                            }
                        }
                    }
                    // Shoot down before the lock that guarded the cleared entries is dropped.
                    tlb.flushTlbLocked();
                } finally {
                    ptl.pteUnmapUnlock(pte, slot.ptl);
                }
            }
            addr = pmdEnd;
        }
    }
}
