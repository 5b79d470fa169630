package dev.offmm.core.walk;

import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PtlHelpers;
import dev.offmm.core.pgtable.Pte;

/**
 * A readable dump of the mapped ranges, like the kernel's {@code page_tables} debugfs file:
 * consecutive leaves with the same level and attributes are folded into one line
 * {@code 0xstart-0xend  size  attributes  level}.
 *
 * <p>Internal: public for {@code AddressSpace.ptdump()}.
 */
public final class PtDump implements MmWalkOps {
    private final StringBuilder out = new StringBuilder();
    private long runStart = -1;
    private long runEnd = -1;
    private String runAttrs;
    private String runLevel;
    private long leaves;

    private PtDump() {
    }

    /**
     * The dump of {@code [start, end)} of the tables below {@code pgdPfn}; caller holds mmap_lock.
     *
     * @param entries the address space's table layout
     * @param ptl the address space's lock helpers
     * @param pgdPfn the PGD's frame
     * @param start the first address
     * @param end the end of the range
     * @return one line per mapped range
     */
    @SuppressWarnings("exports") // internal types: only AddressSpace can obtain them
    public static String dump(Entries entries, PtlHelpers ptl, long pgdPfn, long start, long end) {
        PtDump d = new PtDump();
        PageWalker.walkPageRange(entries, ptl, pgdPfn, start, end, d, null);
        d.flush();
        if (d.leaves == 0) {
            d.out.append("(no mapped pages)\n");
        }
        return d.out.toString();
    }

    @Override
    public int pmdEntry(long entry, long addr, long next, MmWalk walk) {
        if (Pte.huge(entry)) {
            leaf(entry, addr, next, "pmd");
            // Seed 003's fix: a leaf is reported once, from this copy of the entry, and never
            // descended, even if a split turned it into a table since it was read.
            walk.action = MmWalk.ACTION_CONTINUE;
        }
        return 0;
    }

    @Override
    public int pteEntry(long entry, long addr, long next, MmWalk walk) {
        leaf(entry, addr, next, "pte");
        return 0;
    }

    @Override
    public int pteHole(long addr, long next, int depth, MmWalk walk) {
        flush();
        return 0;
    }

    private void leaf(long entry, long addr, long next, String level) {
        leaves++;
        String attrs = attributes(entry);
        if (addr == runEnd && attrs.equals(runAttrs) && level.equals(runLevel)) {
            runEnd = next;
            return;
        }
        flush();
        runStart = addr;
        runEnd = next;
        runAttrs = attrs;
        runLevel = level;
    }

    /** "RW USR ZERO" style flags of a leaf. */
    static String attributes(long e) {
        StringBuilder b = new StringBuilder();
        if (!Pte.present(e)) {
            b.append("NONE");
        } else {
            b.append(Pte.writable(e) ? "RW" : "ro");
        }
        b.append((e & Pte.USER) != 0 ? " USR" : "    ");
        b.append((e & Pte.ACCESSED) != 0 ? " A" : "  ");
        b.append((e & Pte.DIRTY) != 0 ? " D" : "  ");
        if (Pte.zero(e)) {
            b.append(" ZERO");
        }
        if (Pte.hugetlb(e)) {
            b.append(" HUGETLB");
        }
        return b.toString();
    }

    private void flush() {
        if (runStart < 0) {
            return;
        }
        out.append(String.format("0x%016x-0x%016x %9s  %-16s %s%n",
                runStart, runEnd, size(runEnd - runStart), runAttrs, runLevel));
        runStart = -1;
        runEnd = -1;
    }

    private static String size(long bytes) {
        if (bytes % (1L << 30) == 0) {
            return (bytes >> 30) + "G";
        }
        if (bytes % (1L << 20) == 0) {
            return (bytes >> 20) + "M";
        }
        return (bytes >> 10) + "K";
    }
}
