package dev.offmm.core.walk;

import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PtlHelpers;
import dev.offmm.core.pgtable.PtlSlot;
import dev.offmm.core.pgtable.Pte;

/**
 * {@code walk_page_range}: visits the page tables of {@code [start, end)} level by level. The
 * caller holds mmap_lock (read or write), so no table in the range is freed during the walk;
 * upper-level entries are read with acquire loads, each once into a local, and PTEs under the
 * PTE lock. A PMD entry is a leaf or a table as read: a huge leaf is reported and not descended
 * even if a split turns it into a table a moment later, and a table that turned into something
 * else by the time its lock is taken is read again (a DONTNEED may split huge entries while the
 * walk runs under mmap_lock held for read).
 *
 * <p>Internal: public for {@code AddressSpace}, which users call instead
 * ({@code walkPageRange}, {@code ptdump}); its arguments are internal types.
 */
public final class PageWalker {
    private final Entries entries;
    private final PtlHelpers ptl;
    private final MmWalkOps ops;
    private final MmWalk walk = new MmWalk();
    private final PtlSlot slot = new PtlSlot();
    /** Set by {@link #walkPteTable} when the PMD entry no longer named the table it was read as. */
    private boolean tableChanged;

    private PageWalker(Entries entries, PtlHelpers ptl, MmWalkOps ops, Object priv) {
        this.entries = entries;
        this.ptl = ptl;
        this.ops = ops;
        this.walk.priv = priv;
    }

    /**
     * Walks {@code [start, end)} of the tables below {@code pgdPfn}; returns 0 or the first
     * non-zero callback result. Caller holds mmap_lock.
     *
     * @param entries the address space's table layout
     * @param ptl the address space's lock helpers
     * @param pgdPfn the PGD's frame
     * @param start the first address, 4 KiB aligned
     * @param end the end of the range
     * @param ops the callbacks
     * @param priv the callbacks' private state ({@link MmWalk#priv})
     * @return 0 or the first non-zero callback result
     */
    @SuppressWarnings("exports") // internal types: only AddressSpace can obtain them
    public static int walkPageRange(Entries entries, PtlHelpers ptl, long pgdPfn, long start, long end, MmWalkOps ops,
                                    Object priv) {
        return new PageWalker(entries, ptl, ops, priv).walkTable(pgdPfn, Entries.PGD, start, end);
    }

    private int walkTable(long table, int level, long start, long end) {
        long addr = start;
        while (addr < end) {
            long next = Entries.addrEnd(addr, level, end);
            long entryAddr = Entries.offset(table, addr, level);
            long entry = entries.getAcquire(entryAddr);
            if (Pte.none(entry)) {
                int r = ops.pteHole(addr, next, level, walk);
                if (r != 0) {
                    return r;
                }
                addr = next;
                continue;
            }
            walk.action = MmWalk.ACTION_SUBTREE;
            int r = switch (level) {
                case Entries.PGD -> ops.pgdEntry(entry, addr, next, walk);
                case Entries.PUD -> ops.pudEntry(entry, addr, next, walk);
                default -> ops.pmdEntry(entry, addr, next, walk);
            };
            if (r != 0) {
                return r;
            }
            if (walk.action == MmWalk.ACTION_AGAIN) {
                continue;
            }
            // A huge leaf is not a table: reported above as the leaf it is, never descended.
            if (walk.action == MmWalk.ACTION_SUBTREE && Pte.table(entry)) {
                tableChanged = false;
                r = level == Entries.PMD ? walkPteTable(entryAddr, addr, next)
                        : walkTable(Pte.pfn(entry), level + 1, addr, next);
                if (r != 0) {
                    return r;
                }
                if (level == Entries.PMD && tableChanged) {
                    continue;
                }
            }
            addr = next;
        }
        return 0;
    }

    private int walkPteTable(long pmdEntry, long start, long end) {
        long pte = ptl.pteOffsetMapLock(pmdEntry, start, slot);
        if (pte < 0) {
            // The entry read as a table is no longer one (it became huge, or empty): read it
            // again rather than report what it was ({@code walk_pmd_range}'s ACTION_AGAIN).
            tableChanged = true;
            return 0;
        }
        long lock = slot.ptl;
        try {
            return walkPtes(pte, start, end);
        } finally {
            ptl.pteUnmapUnlock(pte, lock);
        }
    }

    private int walkPtes(long pte, long start, long end) {
        long addr = start;
        while (addr < end) {
            long next = addr + Entries.PAGE_SIZE;
            long entry = entries.getPlain(pte);
            int r;
            if (Pte.none(entry)) {
                r = ops.pteHole(addr, next, Entries.PTE, walk);
            } else {
                walk.action = MmWalk.ACTION_SUBTREE;
                r = ops.pteEntry(entry, addr, next, walk);
                if (r == 0 && walk.action == MmWalk.ACTION_AGAIN) {
                    continue;
                }
            }
            if (r != 0) {
                return r;
            }
            addr = next;
            pte += Long.BYTES;
        }
        return 0;
    }
}
