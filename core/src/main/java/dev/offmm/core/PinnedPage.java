package dev.offmm.core;

import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.frame.FrameAllocator;

import java.lang.foreign.MemorySegment;

/**
 * A pinned page (get_user_pages): the frame behind a virtual page, kept alive until
 * {@link #close()} even if the page is unmapped meanwhile. The segment is the frame's 4 KiB
 * (or 2 MiB) for bulk access at native speed; after {@link #close()} the frame may belong to
 * someone else, so do not keep the segment.
 */
public final class PinnedPage implements AutoCloseable {
    private final FrameAllocator frames;
    private final long pfn;
    private final int order;
    private final long va;
    private final MemorySegment segment;
    private boolean closed;

    /** A pin of {@code pfn} holding one reference of order {@code order} (-1: none, the zero page). */
    PinnedPage(FrameAllocator frames, long va, long pfn, int order, MemorySegment segment) {
        this.frames = frames;
        this.va = va;
        this.pfn = pfn;
        this.order = order;
        this.segment = segment;
    }

    /**
     * Pins frame {@code pfn} of {@code memory}, which backs the page at {@code va}: takes a
     * reference, except on the shared zero page (which lives forever and is pinned read-only).
     * The caller guarantees that the frame is not being freed meanwhile.
     */
    static PinnedPage pin(PhysicalMemory memory, long va, long pfn) {
        if (pfn == PhysicalMemory.ZERO_PFN) {
            return new PinnedPage(memory.frames(), va, pfn, -1, memory.frameSegment(pfn, 0).asReadOnly());
        }
        memory.memMap().addAndGetRefcount(pfn, 1);
        return new PinnedPage(memory.frames(), va, pfn, 0, memory.frameSegment(pfn, 0));
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
            if (order >= 0) {
                frames.putFrames(pfn, order);
            }
        }
    }
}
