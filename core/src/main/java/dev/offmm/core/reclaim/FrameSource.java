package dev.offmm.core.reclaim;

import dev.offmm.offheap.frame.FrameAllocator;

/**
 * Order-0 frames for one address space, data pages and tables alike. Under memory pressure an
 * allocation first releases frames whose grace period has passed, waiting a bounded time for
 * contexts to move on (the kernel's direct reclaim), before it reports exhaustion.
 */
public final class FrameSource {
    /** How long one reclaim attempt under pressure waits for a grace period. */
    private static final long RECLAIM_WAIT_NANOS = 50_000_000L;
    private static final int RECLAIM_ATTEMPTS = 4;

    private final FrameAllocator frames;
    private final Reclaimer reclaimer;

    /** Frames from {@code frames}, reclaiming through {@code reclaimer} under pressure. */
    public FrameSource(FrameAllocator frames, Reclaimer reclaimer) {
        this.frames = frames;
        this.reclaimer = reclaimer;
    }

    /**
     * An order-0 frame with refcount 1, not zeroed, or {@link FrameAllocator#NO_FRAME} if there
     * is still none after reclaiming.
     */
    public long alloc() {
        long released = reclaimer.releasedFrames();
        long pfn = frames.allocFrame();
        for (int tries = 0; pfn == FrameAllocator.NO_FRAME && tries < RECLAIM_ATTEMPTS
                && reclaimer.reclaimUnderPressure(released, RECLAIM_WAIT_NANOS); tries++) {
            // Frames released meanwhile went to the releasing thread's cache, which the next
            // allocation drains if it must.
            released = reclaimer.releasedFrames();
            pfn = frames.allocFrame();
        }
        return pfn;
    }

    /** Frees a frame from {@link #alloc()} that was never mapped or published. */
    public void free(long pfn) {
        frames.freeFrame(pfn);
    }
}
