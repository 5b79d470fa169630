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
    /**
     * How long an allocation keeps reclaiming before it reports exhaustion: attempts go on while
     * frames are being released and this budget lasts, because under pressure other threads may
     * take each released batch first (8 threads on 2 cores lost 4 races in a row).
     */
    private static final long RECLAIM_BUDGET_NANOS = 200_000_000L;

    /** What {@link #take} takes: an order-0 frame, a zeroed one, a zeroed 2 MiB one (caches drained). */
    private static final int FRAME = 0;
    private static final int ZEROED = 1;
    private static final int HUGE = 2;

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
        return alloc(false);
    }

    /** {@link #alloc()} of a frame that holds only zeros: data pages and page tables. */
    public long allocZeroed() {
        return alloc(true);
    }

    private long alloc(boolean zeroed) {
        // Sampled before the first attempt, so that a release between the attempt's failure and
        // the wait below is not missed. The count sits on its own cache line and changes once
        // per release, so the fast path reads a line that is almost always in its cache.
        long released = reclaimer.releasedFrames();
        int kind = zeroed ? ZEROED : FRAME;
        long pfn = take(kind);
        return pfn != FrameAllocator.NO_FRAME ? pfn : reclaimAndRetry(released, kind);
    }

    /**
     * A zeroed 2 MiB frame ({@link dev.offmm.offheap.frame.HugeFrames#alloc}) or
     * {@link FrameAllocator#NO_FRAME}. A THP fault ({@code mustHave} false) tries the order-9
     * lists once and falls back to 4 KiB pages if they are empty; hugetlb and collapse, which
     * have no fallback, also drain the frame caches and reclaim what waits for a grace period,
     * within the same budget as an order-0 allocation.
     */
    public long allocHuge(boolean mustHave) {
        long released = reclaimer.releasedFrames();
        long pfn = mustHave ? take(HUGE) : frames.huge().alloc(false);
        return pfn != FrameAllocator.NO_FRAME || !mustHave ? pfn : reclaimAndRetry(released, HUGE);
    }

    /** After a failed attempt: reclaims and takes again while frames come back and the budget lasts. */
    private long reclaimAndRetry(long released, int kind) {
        long pfn = FrameAllocator.NO_FRAME;
        long deadline = System.nanoTime() + RECLAIM_BUDGET_NANOS;
        while (pfn == FrameAllocator.NO_FRAME && System.nanoTime() - deadline < 0
                && reclaimer.reclaimUnderPressure(released, Math.min(RECLAIM_WAIT_NANOS, deadline - System.nanoTime()))) {
            // Frames released meanwhile went to the releasing thread's cache, which the next
            // allocation drains if it must.
            released = reclaimer.releasedFrames();
            pfn = take(kind);
        }
        return pfn;
    }

    private long take(int kind) {
        return switch (kind) {
            case FRAME -> frames.allocFrame();
            case ZEROED -> frames.allocZeroedFrame();
            default -> frames.huge().alloc(true);
        };
    }

    /** Frees a frame from {@link #alloc()} that was never mapped or published. */
    public void free(long pfn) {
        frames.freeFrame(pfn);
    }
}
