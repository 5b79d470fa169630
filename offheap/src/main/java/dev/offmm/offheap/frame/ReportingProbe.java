package dev.offmm.offheap.frame;

import dev.offmm.offheap.inject.FailPoints;
import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.page.PageSize;

import java.lang.foreign.MemorySegment;

/**
 * For the jcstress tests of free page reporting: one free, dirty, unreported 2 MiB block (pfn 0)
 * in a buddy of one block whose mem_map is a 32 KiB heap segment, a reporter whose host side only
 * records whether the block it was asked to discard (its frames, or the host pages of its tail
 * records) was isolated at that moment, and an
 * allocation of the block. A host call for a block that is not isolated (handed out, or still on
 * a list where an allocation can take it) is the forbidden outcome: the host would drop the
 * bytes of memory in use. Not part of the API.
 */
public final class ReportingProbe {
    /** The block the race is about. */
    public static final long BLOCK = 0;

    private final MemMap map;
    private final BuddyAllocator buddy;
    private final PageReporter reporter;
    private volatile int misreported;

    /** A fresh buddy with the block free and dirty (allocated once and freed). */
    public ReportingProbe() {
        long frames = 1L << BuddyAllocator.MAX_ORDER;
        this.map = new MemMap(MemorySegment.ofArray(new long[(int) (frames << MemMap.RECORD_SHIFT) / Long.BYTES]), frames);
        this.buddy = new BuddyAllocator(map, frames, false);
        this.reporter = new PageReporter(buddy, this::discard, this::discardRecords, true, 0, new FailPoints());
        long pfn = buddy.alloc(BuddyAllocator.MAX_ORDER);
        if (pfn != BLOCK) {
            throw new IllegalStateException("expected pfn " + BLOCK + ", got " + pfn);
        }
        map.setFlagsRelease(pfn, 0);
        buddy.free(pfn, BuddyAllocator.MAX_ORDER);
    }

    private int discard(long offset, long length) {
        long pfn = offset >>> PageSize.SHIFT;
        if (map.flagsAcquire(pfn) != MemMap.PG_ISOLATED) {
            misreported = 1;
        }
        return 0;
    }

    /** The struct-page half of a report: the same check, for the block whose records these are. */
    private int discardRecords(long offset, long length) {
        long pfn = (offset & -MemMap.BLOCK_RECORD_BYTES) >>> MemMap.RECORD_SHIFT;
        if (map.flagsAcquire(pfn) != MemMap.PG_ISOLATED) {
            misreported = 1;
        }
        return 0;
    }

    /** One reporting pass (delay 0); returns the blocks it reported. */
    public int reportPass() {
        return reporter.pass();
    }

    /**
     * The broken reporter: checks that the block is free, then calls the host for it without
     * taking it off the list under the zone lock. Returns 1 if it called the host.
     */
    public int brokenReport() {
        if ((map.flagsAcquire(BLOCK) & MemMap.PG_BUDDY) != 0) {
            discard(BLOCK << PageSize.SHIFT, PageSize.HUGE_BYTES);
            return 1;
        }
        return 0;
    }

    /** Allocates a 2 MiB block (waiting for isolated ones, as every allocation does); 1 if it got the block. */
    public int allocate() {
        return buddy.alloc(BuddyAllocator.MAX_ORDER) == BLOCK ? 1 : 0;
    }

    /** 1 if the host was asked to discard the block while it was not isolated. */
    public int misreported() {
        return misreported;
    }
}
