package dev.offmm.core.ops;

import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.vma.Vma;

import java.util.List;

/** The rule that keeps hugetlb pages whole: no operation may cut one ({@code hugetlb_split}'s EINVAL). */
final class HugetlbRanges {
    private HugetlbRanges() {
    }

    /**
     * EINVAL if {@code [start, end)} would cut a 2 MiB page of a hugetlb VMA among {@code vmas}:
     * a boundary strictly inside one that is not 2 MiB aligned. Called before anything changes.
     */
    static void checkCuts(String op, List<Vma> vmas, long start, long end) {
        for (Vma v : vmas) {
            if (v.hugetlb() && (cuts(v, start) || cuts(v, end))) {
                throw MapOps.einval(op + ": [0x" + Long.toHexString(start) + ", 0x" + Long.toHexString(end)
                        + ") cuts a 2 MiB page of hugetlb mapping " + v);
            }
        }
    }

    private static boolean cuts(Vma v, long boundary) {
        return boundary > v.start && boundary < v.end && (boundary & Entries.PMD_MASK) != 0;
    }
}
