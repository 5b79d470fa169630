package dev.offmm.core;

import java.lang.foreign.MemorySegment;

/**
 * A pinned page (get_user_pages): the frame behind a virtual page, kept alive until
 * {@link #close()} even if the page is unmapped meanwhile. The segment is the frame's 4 KiB
 * (or 2 MiB) for bulk access at native speed; after {@link #close()} the frame may belong to
 * someone else, so do not keep the segment.
 */
public final class PinnedPage implements AutoCloseable {
    private final AddressSpace as;
    private final long pfn;
    private final int order;
    private final long va;
    private final MemorySegment segment;
    private boolean closed;

    PinnedPage(AddressSpace as, long va, long pfn, int order, MemorySegment segment) {
        this.as = as;
        this.va = va;
        this.pfn = pfn;
        this.order = order;
        this.segment = segment;
    }

    /** The frame's bytes. */
    public MemorySegment segment() {
        if (closed) {
            throw new IllegalStateException("page is unpinned");
        }
        return segment;
    }

    /** The page-aligned virtual address pinned. */
    public long address() {
        return va;
    }

    /** The frame number (for diagnostics). */
    public long pfn() {
        return pfn;
    }

    /** Unpins; the last unpin of an unmapped page frees its frame. Idempotent. */
    @Override
    public void close() {
        if (!closed) {
            closed = true;
            as.unpin(pfn, order);
        }
    }
}
