package dev.offmm.core.unmap;

import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.Pte;
import dev.offmm.offheap.page.MemMap;

/** The copy step of {@link TableShare}'s unsharing, on its own so that TableShare stays small. */
final class TableCopy {
    private TableCopy() {
    }

    /**
     * Copies the entries of shared table {@code table} into {@code copy}, raising each page's
     * mapcount and refcount, and write-protects them in both: the pages are now mapped twice.
     * The source's other users reach it only through read-only PMD entries and hold no writable
     * translation of it, so clearing its W bits needs no shootdown. Caller holds the table's lock.
     */
    static void copyInto(Entries entries, MemMap map, long table, long copy) {
        for (int i = 0; i < Entries.PTRS_PER_TABLE; i++) {
            long src = Entries.entry(table, i);
            long e = entries.getPlain(src);
            if (Pte.none(e)) {
                continue;
            }
            if (Pte.ownsFrame(e)) {
                long pfn = Pte.pfn(e);
                map.addAndGetMapcount(pfn, 1);
                map.addAndGetRefcount(pfn, 1);
            }
            long ro = Pte.wrprotect(e);
            if (ro != e) {
                entries.setRelease(src, ro);
            }
            // Plain: the copy is published by the release store of the PMD entry.
            entries.setPlain(Entries.entry(copy, i), ro);
        }
        map.addPtePagesPlain(copy, map.ptePagesPlain(table));
    }
}
