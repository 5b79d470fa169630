package dev.offmm.core;

import dev.offmm.core.mm.Mm;
import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.zone.Zone;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * A pinned page (get_user_pages): the frame behind a virtual page, kept alive until
 * {@link #close()} even if the page is unmapped meanwhile, and its bytes as a
 * {@link MemorySegment} for bulk access at native speed.
 *
 * <p>The segment lives exactly as long as the pin: it belongs to a confined arena of its own,
 * which {@link #close()} closes, so after the pin ends every access through it (from a segment
 * kept anywhere) fails with {@link IllegalStateException}; it can never reach the frame once the
 * frame belongs to someone else. Like the segment, the pin is confined to the thread that took
 * it: another thread's access or {@code close()} fails with {@link WrongThreadException}.
 *
 * <p>A pin still open when its address space closes keeps only its frame alive, until the pin
 * closes; one still open when the {@link PhysicalMemory} closes keeps the memory's region
 * mapped until then, and the memory's {@code close()} reports it.
 */
public final class PinnedPage implements AutoCloseable {
    private final Zone zone;
    private final Arena arena;
    private final long pfn;
    private final int order;
    private final long va;
    private final MemorySegment segment;
    /** The space whose pin count this pin raised, or null (the zero page). */
    private Mm space;
    private boolean closed;

    private PinnedPage(Zone zone, long va, long pfn, int order, boolean readOnly) {
        this.zone = zone;
        this.va = va;
        this.pfn = pfn;
        this.order = order;
        // Counted first: the zone keeps its region from here on, or refuses.
        zone.pinOpened();
        Arena a = null;
        try {
            a = Arena.ofConfined();
            MemorySegment s = lifetimeOf(zone.frameSegment(pfn, Math.max(order, 0)), a);
            this.segment = readOnly ? s.asReadOnly() : s;
            this.arena = a;
        } catch (RuntimeException | Error e) {
            if (a != null) {
                a.close();
            }
            zone.pinClosed();
            throw e;
        }
    }

    /**
     * The frame's bytes with the pin's lifetime instead of the region's. {@code reinterpret} is a
     * restricted method: the JVM warns once unless native access is enabled for this module.
     */
    @SuppressWarnings("restricted")
    private static MemorySegment lifetimeOf(MemorySegment frame, Arena arena) {
        return frame.reinterpret(arena, null);
    }

    /**
     * A pinned page whose reference the caller has already taken (and drops again if this throws).
     */
    static PinnedPage pinned(PhysicalMemory memory, long va, long pfn, Mm space) {
        PinnedPage p = new PinnedPage(memory.zone(), va, pfn, 0, false);
        p.space = space;
        return p;
    }

    /**
     * Pins frame {@code pfn} of {@code memory}, which backs the page at {@code va}: takes a
     * reference, except on the shared zero page (which lives forever and is pinned read-only).
     * The caller guarantees that the frame is not being freed meanwhile (it is inside an access).
     */
    static PinnedPage pin(PhysicalMemory memory, long va, long pfn) {
        Zone zone = memory.zone();
        if (pfn == PhysicalMemory.ZERO_PFN) {
            return new PinnedPage(zone, va, pfn, -1, true);
        }
        zone.memMap().addAndGetRefcount(pfn, 1);
        try {
            return new PinnedPage(zone, va, pfn, 0, false);
        } catch (RuntimeException | Error e) {
            // The mapping still holds its own reference: drop only the pin's.
            zone.memMap().addAndGetRefcount(pfn, -1);
            throw e;
        }
    }

    /**
     * The frame's bytes, valid until {@link #close()}.
     *
     * @return the 4 KiB segment of the pinned frame
     * @throws IllegalStateException if the pin is closed
     */
    public MemorySegment segment() {
        if (closed) {
            throw new IllegalStateException("page is unpinned");
        }
        return segment;
    }

    /** {@return the page-aligned virtual address pinned} */
    public long address() {
        return va;
    }

    /** {@return the frame number (for diagnostics)} */
    public long pfn() {
        return pfn;
    }

    /**
     * Unpins: the segment stops working, and the last unpin of an unmapped page frees its frame.
     * Idempotent; on the pinning thread only.
     *
     * @throws WrongThreadException from another thread
     */
    @Override
    public void close() {
        if (!closed) {
            arena.close();
            closed = true;
            try {
                if (order >= 0 && !zone.isClosed()) {
                    zone.frames().putFrames(pfn, order);
                }
            } catch (IllegalStateException e) {
                if (!zone.isClosed()) {
                    throw e;
                }
                // The memory closed meanwhile: its frames went with it.
            } finally {
                zone.pinClosed();
                if (space != null) {
                    space.pinClosed();
                }
            }
        }
    }
}
