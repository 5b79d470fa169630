package dev.offmm.offheap.frame;

import dev.offmm.offheap.inject.FailPoints;
import dev.offmm.offheap.inject.FailSite;
import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.page.PageSize;

/**
 * 2 MiB frames for huge mappings, on a path of their own: they come straight from the buddy's
 * order-9 lists and go straight back, so they neither drain nor fill the order-0 per-thread
 * caches (a THP fault that finds no free order-9 block falls back to 4 KiB pages instead of
 * emptying every cache to build one).
 *
 * <h2>A huge frame is 512 pages that share one allocation</h2>
 * The head's flags say {@code PG_ALLOCATED|order 9}; the tails' flags stay clear. Unlike the
 * kernel's folio (one refcount and an entire-mapcount on the head), every subpage keeps its own
 * refcount (1 for the mapping, one more per pin) and mapcount (1 while the huge entry or its
 * PTE maps it). That costs 1,024 four-byte stores per 2 MiB fault (0.2 % of the zeroing) and
 * buys two simple rules:
 * <ul>
 *   <li>a split ({@link #split}) only retypes the 512 subpages as order-0 pages: their counts
 *       are already right, so pins taken before, during or after it need nothing;</li>
 *   <li>a pin of a subpage is an ordinary order-0 pin; releasing the huge page
 *       ({@link #put}) frees the block whole when no subpage is pinned, and otherwise splits
 *       it first, so the pinned subpages outlive the rest as order-0 frames.</li>
 * </ul>
 */
public final class HugeFrames {
    /** Frames of a huge page. */
    public static final int NR = 1 << PageSize.HUGE_ORDER;
    private static final int ORDER = PageSize.HUGE_ORDER;
    private static final long ALLOCATED_HUGE = MemMap.withOrder(MemMap.PG_ALLOCATED, ORDER);
    private static final long ALLOCATED_ORDER0 = MemMap.withOrder(MemMap.PG_ALLOCATED, 0);

    private final FrameAllocator frames;
    private final BuddyAllocator buddy;
    private final MemMap map;
    private final FailPoints failPoints;

    HugeFrames(FrameAllocator frames, BuddyAllocator buddy, MemMap map, FailPoints failPoints) {
        this.frames = frames;
        this.buddy = buddy;
        this.map = map;
        this.failPoints = failPoints;
    }

    /**
     * A zeroed 2 MiB frame, every subpage with refcount 1 and mapcount 0, or
     * {@link FrameAllocator#NO_FRAME}. A block the host never touched (or took back) is zero
     * already and is not written. {@code drainCaches}: when no order-9 block is free, drain the
     * order-0 caches so their frames can merge into one and try once more (for hugetlb, which
     * has no fallback); a THP fault passes false and falls back instead. Outside any lock.
     */
    public long alloc(boolean drainCaches) {
        frames.checkOpen();
        if (failPoints.shouldFail(FailSite.FRAME_HIGH_ORDER)) {
            return FrameAllocator.NO_FRAME;
        }
        long pfn = buddy.alloc(ORDER, true);
        if (pfn == FrameAllocator.NO_FRAME && drainCaches && frames.drainAllCaches() > 0) {
            pfn = buddy.alloc(ORDER, true);
        }
        if (pfn == FrameAllocator.NO_FRAME) {
            return pfn;
        }
        boolean zeroed = (map.flagsPlain(pfn) & MemMap.PG_ZEROED) != 0;
        map.setFlagsRelease(pfn, ALLOCATED_HUGE);
        if (!zeroed) {
            frames.zeroFrames(pfn, ORDER);
        }
        for (int i = 1; i < NR; i++) {
            map.setRefcountRelease(pfn + i, 1);
        }
        return pfn;
    }

    /**
     * Sets the mapcount of every subpage of huge frame {@code pfn}: before its entry is
     * published, or as its entry is cleared under the lock that guards it (a huge page has one
     * mapping, its entry, so nothing else counts on it meanwhile). Release stores.
     */
    public void setMapcounts(long pfn, int value) {
        for (int i = 0; i < NR; i++) {
            map.setMapcountRelease(pfn + i, value);
        }
    }


    /** Frees a huge frame from {@link #alloc} that was never published: mapcounts 0, refcounts 1. */
    public void freeUnused(long pfn) {
        checkHuge(pfn);
        for (int i = 1; i < NR; i++) {
            map.setRefcountRelease(pfn + i, 0);
        }
        frames.freeFrames(pfn, ORDER);
    }

    /**
     * {@code split_page}: huge frame {@code pfn} becomes 512 order-0 pages, each keeping its
     * refcount and mapcount. Called by the split of its huge entry, under the lock that guards
     * the entry; release stores, tails first.
     *
     * @throws IllegalStateException if {@code pfn} is not the head of an allocated huge frame
     */
    public void split(long pfn) {
        checkHuge(pfn);
        for (int i = NR - 1; i >= 0; i--) {
            map.setFlagsRelease(pfn + i, ALLOCATED_ORDER0);
        }
    }

    /**
     * Drops the mapping's reference of each subpage of huge frame {@code pfn}, after its entry
     * was cleared and its grace period passed (so no new pin can reach it). Unpinned, the block
     * goes back to the buddy whole; with pins, it is split first and the unpinned subpages go to
     * {@code home} as order-0 frames while the pinned ones live until their pins close.
     *
     * @throws IllegalStateException if a subpage is still mapped or the head is not a huge frame
     */
    public void put(long pfn, FrameCache home) {
        checkHuge(pfn);
        boolean pinned = false;
        for (int i = 0; i < NR; i++) {
            int mapcount = map.mapcountVolatile(pfn + i);
            if (mapcount != 0) {
                throw new IllegalStateException("releasing huge pfn=" + pfn + " whose subpage " + i
                        + " still has mapcount " + mapcount);
            }
            // Pins only ever go away now: a subpage seen at 1 stays at 1 until this put.
            pinned |= map.refcountVolatile(pfn + i) != 1;
        }
        if (!pinned) {
            for (int i = 1; i < NR; i++) {
                map.setRefcountRelease(pfn + i, 0);
            }
            frames.putFrames(pfn, ORDER);
            return;
        }
        // Retyped before any count drops: a pin that closes from here on frees an order-0 page.
        split(pfn);
        long[] pfns = new long[NR];
        for (int i = 0; i < NR; i++) {
            pfns[i] = pfn + i;
        }
        frames.putFrames(pfns, NR, home);
    }

    /** Whether {@code pfn} is the head of an allocated huge frame (acquire). */
    public boolean isHuge(long pfn) {
        return map.flagsAcquire(pfn) == ALLOCATED_HUGE;
    }

    private void checkHuge(long pfn) {
        if ((pfn & (NR - 1)) != 0 || !isHuge(pfn)) {
            throw new IllegalStateException("pfn=" + pfn + " is not the head of an allocated huge frame (flags 0x"
                    + Long.toHexString(map.flagsAcquire(pfn & ~(NR - 1L))) + ")");
        }
    }
}
