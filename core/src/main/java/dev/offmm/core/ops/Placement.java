package dev.offmm.core.ops;

import dev.offmm.core.VmException;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.vma.Vma;
import dev.offmm.core.vma.VmaTree;

/** Where mmap puts a mapping without {@code FIXED} ({@code get_unmapped_area}). Caller holds mmap_lock. */
final class Placement {
    private static final long PAGE = Entries.PAGE_SIZE;
    private static final long USER_END = Entries.USER_END;
    private static final long HUGE_MASK = Entries.PMD_MASK;

    private Placement() {
    }

    /**
     * Where a mapping of {@code len} without {@code FIXED} goes: the hint if it is free (rounded
     * down to 2 MiB for hugetlb), else the highest free gap below the user end, at a 2 MiB-aligned
     * address when the length is a multiple of 2 MiB (so its huge pages line up), else, or if no
     * aligned gap is left and it is not hugetlb, at any page.
     */
    static long findFreeRange(VmaTree vmas, long hint, long len, boolean hugetlb) {
        if (hint != 0) {
            long h = hint & (hugetlb ? -Entries.PMD_SIZE : -PAGE);
            if (h >= MapOps.MMAP_MIN_ADDR && h <= USER_END - len && vmas.overlapping(h, h + len).isEmpty()) {
                return h;
            }
        }
        long at = (len & HUGE_MASK) == 0 ? topDown(vmas, len, Entries.PMD_SIZE) : -1;
        if (at < 0 && !hugetlb) {
            at = topDown(vmas, len, PAGE);
        }
        if (at < 0) {
            throw new VmException(VmException.Code.ENOMEM, "no free range of " + len + " bytes");
        }
        return at;
    }

    /** The highest free gap of {@code len} below the user end at a multiple of {@code align}, or -1. */
    private static long topDown(VmaTree vmas, long len, long align) {
        Vma[] array = vmas.snapshot();
        long top = USER_END;
        for (int i = array.length - 1; i >= -1; i--) {
            long bottom = Math.max(i >= 0 ? array[i].end : MapOps.MMAP_MIN_ADDR, MapOps.MMAP_MIN_ADDR);
            long at = (top - len) & -align;
            if (top - len >= bottom && at >= bottom) {
                return at;
            }
            if (i >= 0) {
                top = array[i].start;
            }
        }
        return -1;
    }
}
