package dev.offmm.offheap.page;

/**
 * The frame geometry, defined once for offheap and core: 4 KiB base pages, 2 MiB huge pages
 * (order {@link #HUGE_ORDER}). A frame number (pfn) becomes a byte offset in the physical region
 * with {@code pfn << SHIFT}.
 */
public final class PageSize {
    /** log2 of the base page size. */
    public static final int SHIFT = 12;
    /** Bytes per base page (4 KiB). */
    public static final long BYTES = 1L << SHIFT;
    /** The offset-in-page bits of an address. */
    public static final long MASK = BYTES - 1;
    /** The buddy order of a huge page: 2^9 base pages. */
    public static final int HUGE_ORDER = 9;
    /** log2 of the huge page size. */
    public static final int HUGE_SHIFT = SHIFT + HUGE_ORDER;
    /** Bytes per huge page (2 MiB). */
    public static final long HUGE_BYTES = 1L << HUGE_SHIFT;

    private PageSize() {
    }
}
