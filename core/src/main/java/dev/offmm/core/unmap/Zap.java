package dev.offmm.core.unmap;

import dev.offmm.core.Prot;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PtlSlot;
import dev.offmm.core.pgtable.Pte;

/**
 * Page-table work of munmap, madvise(DONTNEED) and mprotect: {@code zap_page_range},
 * {@code change_protection} and {@code free_pgtables}.
 *
 * <p>Every method is entered with mmap_lock held for write and the affected VMAs write-locked,
 * so no fault runs in the range; faults in neighbouring VMAs may share the tables, so entries are
 * changed under the lock that guards them. Leaves are cleared under the PTE lock and the TLB
 * generation is bumped before that lock is dropped.
 */
public final class Zap {
    private static final long USER_END = 1L << 47;

    private Zap() {
    }

    /** Operation on the leaves of one PTE table, under its lock. */
    private interface LeafOp {
        /** Returns the new entry for {@code entry}. */
        long apply(Mm mm, MmuGather tlb, long entry);
    }

    /** {@code zap_page_range}: clears every leaf in {@code [start, end)}, gathering the pages. */
    public static void unmapRange(Mm mm, MmuGather tlb, long start, long end) {
        walkLeaves(mm, tlb, start, end, Zap::zapLeaf);
    }

    private static long zapLeaf(Mm mm, MmuGather tlb, long entry) {
        if (Pte.ownsFrame(entry)) {
            long pfn = Pte.pfn(entry);
            mm.memMap.addMapcount(pfn, -1);
            tlb.removePage(pfn, 0);
        } else {
            tlb.needFlush();
        }
        return 0;
    }

    /** {@code change_protection}: gives every leaf in {@code [start, end)} protection {@code prot}. */
    public static void changeProtection(Mm mm, MmuGather tlb, long start, long end, int prot) {
        boolean r = Prot.readable(prot);
        boolean w = Prot.writable(prot);
        walkLeaves(mm, tlb, start, end, (m, t, entry) -> {
            long updated = Pte.withProt(entry, r, w);
            if (updated != entry) {
                t.needFlush();
            }
            return updated;
        });
    }

    private static void walkLeaves(Mm mm, MmuGather tlb, long start, long end, LeafOp op) {
        Entries e = mm.entries;
        PtlSlot slot = new PtlSlot();
        long addr = start;
        while (addr < end) {
            long pgdE = Entries.entry(mm.pgdPfn, Entries.index(addr, Entries.PGDIR_SHIFT));
            long pgdval = e.getAcquire(pgdE);
            if (pgdval == 0) {
                addr = next(addr, Entries.PGDIR_SIZE, end);
                continue;
            }
            long pudE = Entries.entry(Pte.pfn(pgdval), Entries.index(addr, Entries.PUD_SHIFT));
            long pudval = e.getAcquire(pudE);
            if (pudval == 0) {
                addr = next(addr, Entries.PUD_SIZE, end);
                continue;
            }
            long pmdE = Entries.entry(Pte.pfn(pudval), Entries.index(addr, Entries.PMD_SHIFT));
            long pmdEnd = next(addr, Entries.PMD_SIZE, end);
            long pte = mm.ptl.pteOffsetMapLock(pmdE, addr, slot);
            if (pte >= 0) {
                try {
                    for (long a = addr; a < pmdEnd; a += 4096, pte += 8) {
                        long entry = e.getPlain(pte);
                        if (entry != 0) {
                            long updated = op.apply(mm, tlb, entry);
                            if (updated != entry) {
                                e.setRelease(pte, updated);
                            }
                        }
                    }
                    // Shoot down before the lock that guarded the cleared entries is dropped.
                    tlb.flushTlbLocked();
                } finally {
                    mm.ptl.pteUnmapUnlock(pte, slot.ptl);
                }
            }
            addr = pmdEnd;
        }
    }

    private static long next(long addr, long size, long end) {
        long boundary = (addr + size) & -size;
        return boundary <= 0 || boundary > end ? end : boundary;
    }

    /**
     * {@code free_pgtables}: frees every table that maps only addresses in {@code [floor, ceiling)}
     * and part of {@code [start, end)}. No VMA may remain in {@code [floor, ceiling)}, so those
     * tables are empty. Unlinks each under the lock guarding its parent entry and gathers it
     * ({@code pte_free_tlb} and friends); the destructor runs when the gather's batch is released.
     */
    public static void freePgtables(Mm mm, MmuGather tlb, long start, long end, long floor, long ceiling) {
        Entries e = mm.entries;
        long addr = start & -Entries.PGDIR_SIZE;
        for (; addr < end && addr < USER_END; addr += Entries.PGDIR_SIZE) {
            long pgdE = Entries.entry(mm.pgdPfn, Entries.index(addr, Entries.PGDIR_SHIFT));
            long pgdval = e.getAcquire(pgdE);
            if (pgdval == 0) {
                continue;
            }
            long pudTable = Pte.pfn(pgdval);
            freePmdTables(mm, tlb, pudTable, Math.max(addr, start), Math.min(addr + Entries.PGDIR_SIZE, end), floor, ceiling);
            if (floor <= addr && addr + Entries.PGDIR_SIZE <= ceiling) {
                unlink(mm, pgdE, pudTable, mm.pageTableLock, false);
                tlb.pudFreeTlb(pudTable);
            }
        }
    }

    private static void freePmdTables(Mm mm, MmuGather tlb, long pudTable, long start, long end, long floor, long ceiling) {
        Entries e = mm.entries;
        for (long addr = start & -Entries.PUD_SIZE; addr < end; addr += Entries.PUD_SIZE) {
            long pudE = Entries.entry(pudTable, Entries.index(addr, Entries.PUD_SHIFT));
            long pudval = e.getAcquire(pudE);
            if (pudval == 0) {
                continue;
            }
            long pmdTable = Pte.pfn(pudval);
            freePteTables(mm, tlb, pmdTable, Math.max(addr, start), Math.min(addr + Entries.PUD_SIZE, end), floor, ceiling);
            if (floor <= addr && addr + Entries.PUD_SIZE <= ceiling) {
                unlink(mm, pudE, pmdTable, mm.pageTableLock, false);
                tlb.pmdFreeTlb(pmdTable);
            }
        }
    }

    private static void freePteTables(Mm mm, MmuGather tlb, long pmdTable, long start, long end, long floor, long ceiling) {
        Entries e = mm.entries;
        for (long addr = start & -Entries.PMD_SIZE; addr < end; addr += Entries.PMD_SIZE) {
            if (!(floor <= addr && addr + Entries.PMD_SIZE <= ceiling)) {
                continue;
            }
            long pmdE = Entries.entry(pmdTable, Entries.index(addr, Entries.PMD_SHIFT));
            long pmdval = e.getAcquire(pmdE);
            if (pmdval == 0 || Pte.huge(pmdval)) {
                continue;
            }
            long pteTable = Pte.pfn(pmdval);
            unlink(mm, pmdE, pteTable, 0, true);
            tlb.pteFreeTlb(pteTable);
        }
    }

    /** Clears the parent entry of an empty table under the lock that guards the parent entry. */
    private static void unlink(Mm mm, long parentEntry, long table, long mmLock, boolean pmdLevel) {
        if (!mm.entries.tableEmpty(table)) {
            throw new IllegalStateException("free_pgtables: table pfn=" + table + " still has entries");
        }
        long ptl = pmdLevel ? mm.ptl.pmdLock(Entries.tableOf(parentEntry)) : mm.ptl.pageTableLock();
        try {
            mm.entries.setRelease(parentEntry, 0);
        } finally {
            mm.ptl.unlock(ptl);
        }
    }
}
