package dev.offmm.core.pgtable;

import dev.offmm.core.walk.MmWalk;
import dev.offmm.core.walk.MmWalkOps;

import dev.offmm.core.mm.Mm;

/**
 * {@code walk_page_range}: visits the page tables of {@code [start, end)} level by level. The
 * caller holds mmap_lock (read or write), so no table in the range is freed during the walk;
 * upper-level entries are read with acquire loads, each once into a local, and PTEs under the
 * PTE lock.
 */
public final class PageWalker {
    private static final int[] SHIFTS = {Entries.PGDIR_SHIFT, Entries.PUD_SHIFT, Entries.PMD_SHIFT};

    private final Mm mm;
    private final MmWalkOps ops;
    private final MmWalk walk = new MmWalk();
    private final PtlSlot slot = new PtlSlot();

    private PageWalker(Mm mm, MmWalkOps ops, Object priv) {
        this.mm = mm;
        this.ops = ops;
        this.walk.priv = priv;
    }

    /**
     * Walks {@code [start, end)} of {@code mm}; returns 0 or the first non-zero callback result.
     * Caller holds mmap_lock.
     */
    public static int walkPageRange(Mm mm, long start, long end, MmWalkOps ops, Object priv) {
        return new PageWalker(mm, ops, priv).walkTable(mm.pgdPfn, 0, start, end);
    }

    private static long next(long addr, int shift, long end) {
        long size = 1L << shift;
        long boundary = (addr + size) & -size;
        return boundary <= 0 || boundary > end ? end : boundary;
    }

    private int walkTable(long table, int depth, long start, long end) {
        int shift = SHIFTS[depth];
        long addr = start;
        while (addr < end) {
            long next = next(addr, shift, end);
            long entryAddr = Entries.entry(table, Entries.index(addr, shift));
            long entry = mm.entries.getAcquire(entryAddr);
            if (entry == 0) {
                int r = ops.pteHole(addr, next, depth, walk);
                if (r != 0) {
                    return r;
                }
                addr = next;
                continue;
            }
            walk.action = MmWalk.ACTION_SUBTREE;
            int r = switch (depth) {
                case 0 -> ops.pgdEntry(entry, addr, next, walk);
                case 1 -> ops.pudEntry(entry, addr, next, walk);
                default -> ops.pmdEntry(entry, addr, next, walk);
            };
            if (r != 0) {
                return r;
            }
            if (walk.action == MmWalk.ACTION_AGAIN) {
                continue;
            }
            if (walk.action == MmWalk.ACTION_SUBTREE && !Pte.huge(entry)) {
                if (depth == 2) {
                    r = walkPteTable(entryAddr, addr, next);
                } else {
                    r = walkTable(Pte.pfn(entry), depth + 1, addr, next);
                }
                if (r != 0) {
                    return r;
                }
            }
            addr = next;
        }
        return 0;
    }

    private int walkPteTable(long pmdEntry, long start, long end) {
        long pte = mm.ptl.pteOffsetMapLock(pmdEntry, start, slot);
        if (pte < 0) {
            return ops.pteHole(start, end, 2, walk);
        }
        long ptl = slot.ptl;
        try {
            return walkPtes(pte, start, end);
        } finally {
            mm.ptl.pteUnmapUnlock(pte, ptl);
        }
    }

    private int walkPtes(long pte, long start, long end) {
        for (long addr = start; addr < end; addr += 4096, pte += 8) {
            long entry = mm.entries.getPlain(pte);
            int r;
            if (entry == 0) {
                r = ops.pteHole(addr, addr + 4096, 3, walk);
            } else {
                walk.action = MmWalk.ACTION_SUBTREE;
                r = ops.pteEntry(entry, addr, addr + 4096, walk);
                if (r == 0 && walk.action == MmWalk.ACTION_AGAIN) {
                    addr -= 4096;
                    pte -= 8;
                    continue;
                }
            }
            if (r != 0) {
                return r;
            }
        }
        return 0;
    }
}
