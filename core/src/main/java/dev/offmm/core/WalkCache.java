package dev.offmm.core;

import dev.offmm.core.mm.Mm;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.Pte;

import java.util.Arrays;

/**
 * A context's paging-structure caches (the x86 PDE and PDPTE caches): the value of the PMD entry
 * that names the PTE table of a recent 2 MiB region, and of the PUD entry that names the PMD
 * table of a recent 1 GiB region, so that a TLB miss usually costs one load (the PTE) instead of
 * four. Direct-mapped, each slot a tag at {@code 2i} and a value at {@code 2i + 1}; tags carry
 * the owning context's flush epoch ({@code tagBase}), so a TLB flush drops them with the TLB.
 *
 * <p>Safe without locks for the same reason as the TLB: only present tables are cached (an
 * empty entry may be filled at any time, so it is looked up again), and a table is freed only
 * after a TLB-generation bump and a grace period, which flushes the context before it can walk
 * through a cached table that is gone. Confined to the context's thread.
 */
final class WalkCache {
    /** 2 MiB regions whose PTE table is cached: 512 MiB of reach in 4 KiB of tags and values. */
    static final int PTE_TABLES = 256;
    /** 1 GiB regions whose PMD table is cached: 16 GiB of reach, a cache's slabs and index. */
    static final int PMD_TABLES = 16;

    private final Mm mm;
    private final Entries entries;
    private final long[] pteTables = new long[PTE_TABLES * 2];
    private final long[] pmdTables = new long[PMD_TABLES * 2];

    WalkCache(Mm mm, Entries entries) {
        this.mm = mm;
        this.entries = entries;
    }

    /**
     * The value of the PMD entry of {@code va}: cached if it names a PTE table, else loaded
     * (acquire) through the cached PMD table of its 1 GiB region; 0 (none) if a level above is
     * missing. Inside an access only.
     */
    long pmd(long va, long tagBase) {
        long vhpn = va >>> Entries.PMD_SHIFT;
        int p = ((int) vhpn & (PTE_TABLES - 1)) << 1;
        long[] c = pteTables;
        if (c[p] == vhpn + tagBase) {
            return c[p + 1];
        }
        long pmd = loadPmd(va, tagBase);
        if (Pte.table(pmd)) {
            c[p] = vhpn + tagBase;
            c[p + 1] = pmd;
        }
        return pmd;
    }

    private long loadPmd(long va, long tagBase) {
        long vgpn = va >>> Entries.PUD_SHIFT;
        int q = ((int) vgpn & (PMD_TABLES - 1)) << 1;
        long[] c = pmdTables;
        long pud;
        if (c[q] == vgpn + tagBase) {
            pud = c[q + 1];
        } else {
            long pgd = entries.getAcquire(Entries.pgdOffset(mm.pgd(), va));
            if (Pte.none(pgd)) {
                return 0;
            }
            pud = entries.getAcquire(Entries.pudOffset(pgd, va));
            if (Pte.none(pud)) {
                return 0;
            }
            c[q] = vgpn + tagBase;
            c[q + 1] = pud;
        }
        return entries.getAcquire(Entries.pmdOffset(pud, va));
    }

    /** Empties both caches (when the epoch starts again). */
    void clear() {
        Arrays.fill(pteTables, 0);
        Arrays.fill(pmdTables, 0);
    }
}
