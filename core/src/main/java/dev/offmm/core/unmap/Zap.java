package dev.offmm.core.unmap;

import dev.offmm.core.Prot;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PtlHelpers;
import dev.offmm.core.pgtable.PtlSlot;
import dev.offmm.core.pgtable.Pte;
import dev.offmm.core.pgtable.TableAlloc;
import dev.offmm.core.reclaim.Reclaimer;
import dev.offmm.offheap.frame.FrameAllocator;
import dev.offmm.offheap.page.MemMap;

/**
 * The leaf work of munmap, madvise(DONTNEED) and mprotect: {@code zap_page_range} and
 * {@code change_protection}, and the gathers they fill.
 *
 * <p>Callers hold mmap_lock: for write (munmap, mprotect, with the affected VMAs write-locked, so
 * no fault runs in the range) or for read (DONTNEED, which faults in the same range may race, as
 * in Linux: they refault zero pages). Faults in neighbouring VMAs may share the tables either
 * way, so every entry is changed under the PTE lock that guards it, and the TLB generation is
 * bumped before that lock is dropped.
 */
public final class Zap {
    private final Mm mm;
    private final Entries entries;
    private final PtlHelpers ptl;
    private final MemMap map;
    private final Reclaimer reclaimer;
    private final FrameAllocator frames;
    private final TableAlloc tables;

    /** Leaf operations on {@code mm}'s tables; gathers retire to {@code reclaimer}. */
    public Zap(Mm mm, Entries entries, PtlHelpers ptl, MemMap map, Reclaimer reclaimer, FrameAllocator frames,
               TableAlloc tables) {
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

    /** {@code tlb_gather_mmu}: a new gather for one operation. */
    public MmuGather gather() {
        return new MmuGather(mm, reclaimer, frames, tables);
    }

    /** {@code zap_page_range}: clears every leaf in {@code [start, end)}, gathering the pages. */
    public void unmapRange(MmuGather tlb, long start, long end) {
        walkLeaves(tlb, start, end, this::zapLeaf);
    }

    private long zapLeaf(MmuGather tlb, long entry) {
        if (Pte.ownsFrame(entry)) {
            long pfn = Pte.pfn(entry);
            map.addAndGetMapcount(pfn, -1);
            tlb.removePage(pfn, 0);
        } else {
            tlb.needFlush();
        }
        return 0;
    }

    /** {@code change_protection}: gives every leaf in {@code [start, end)} protection {@code prot}. */
    public void changeProtection(MmuGather tlb, long start, long end, int prot) {
        boolean r = Prot.readable(prot);
        boolean w = Prot.writable(prot);
        walkLeaves(tlb, start, end, (t, entry) -> {
            long updated = Pte.withProt(entry, r, w);
            if (updated != entry) {
                t.needFlush();
            }
            return updated;
        });
    }

    private void walkLeaves(MmuGather tlb, long start, long end, LeafOp op) {
        PtlSlot slot = new PtlSlot();
        long addr = start;
        while (addr < end) {
            long pmdE = entries.lookupPmd(mm.pgd(), addr);
            if (pmdE < 0) {
                addr = Entries.addrEnd(addr, Entries.missingLevel(pmdE), end);
                continue;
            }
            long pmdEnd = Entries.addrEnd(addr, Entries.PMD, end);
            long pte = ptl.pteOffsetMapLock(pmdE, addr, slot);
            if (pte >= 0) {
                try {
                    for (long a = addr; a < pmdEnd; a += Entries.PAGE_SIZE, pte += Long.BYTES) {
                        long entry = entries.getPlain(pte);
                        if (!Pte.none(entry)) {
                            long updated = op.apply(tlb, entry);
                            if (updated != entry) {
                                entries.setRelease(pte, updated);
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
