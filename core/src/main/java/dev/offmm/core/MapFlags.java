package dev.offmm.core;

/**
 * Flags of {@code mmap}. Anonymous private is the only (and default) kind of mapping.
 */
public final class MapFlags {
    /** No flags: anonymous, private, placed at the hint if free, else top-down. */
    public static final int NONE = 0;
    /** Place exactly at {@code addr}, replacing what was there. */
    public static final int FIXED = 1;
    /** Place exactly at {@code addr}; fail with EEXIST if anything is mapped there. */
    public static final int FIXED_NOREPLACE = 1 << 1;
    /** Fault every page in now. */
    public static final int POPULATE = 1 << 2;
    /** Reserve no commit charge; offmm reserves none anyway (like overcommit_memory=1). */
    public static final int NORESERVE = 1 << 3;
    /**
     * Map 2 MiB pages only ({@code MAP_HUGETLB}): the length and a {@code FIXED} address must be
     * multiples of 2 MiB, every fault maps a 2 MiB frame (a read too, as hugetlbfs does) and never
     * falls back to 4 KiB pages, and munmap, mprotect and madvise may not cut a 2 MiB page.
     */
    public static final int HUGETLB = 1 << 4;
    /** Every valid bit. */
    public static final int ALL = FIXED | FIXED_NOREPLACE | POPULATE | NORESERVE | HUGETLB;

    private MapFlags() {
    }
}
