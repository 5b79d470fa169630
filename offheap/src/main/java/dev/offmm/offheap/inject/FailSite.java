package dev.offmm.offheap.inject;

/** The allocation sites that {@link FailPoints} can make fail. */
public enum FailSite {
    /** An order-0 frame from the frame allocator (data pages). */
    FRAME,
    /** A frame of order 1 or more (2 MiB pages). */
    FRAME_HIGH_ORDER,
    /** A frame for a page table, at any level. */
    PAGE_TABLE,
    /** A debug lock from the lock slab, in a table constructor. */
    PTLOCK,
    /** A new page for the debug-lock slab. */
    SLAB_PAGE,
    /** The host call that gives a free 2 MiB block back (free page reporting's {@code madvise}). */
    REPORT
}
