package dev.offmm.offheap.frame;

import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.page.PageSize;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashSet;
import java.util.Set;

import static dev.offmm.offheap.frame.FrameAllocator.NO_FRAME;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link FrameAllocator#allocZeroedFrame()} hands out only zeros, whichever way the frame came
 * back: released in bulk (zeroed on the way into the cache, {@code PG_ZEROED}), freed one by one
 * (dirty in the cache), or drained to the buddy and refilled (the flag is gone). Every frame is
 * dirtied with a pattern before it goes back, so a frame handed out unzeroed fails the test.
 */
class ZeroedFramesTest {
    private static final int FRAMES = 64;

    private static void dirty(MemorySegment region, long pfn) {
        MemorySegment f = region.asSlice(pfn << PageSize.SHIFT, PageSize.BYTES);
        for (long off = 0; off < PageSize.BYTES; off += 8) {
            f.set(ValueLayout.JAVA_LONG, off, 0xdead_beef_0000_0000L | pfn);
        }
    }

    private static void assertZero(MemorySegment region, long pfn) {
        MemorySegment f = region.asSlice(pfn << PageSize.SHIFT, PageSize.BYTES);
        for (long off = 0; off < PageSize.BYTES; off += 8) {
            assertEquals(0L, f.get(ValueLayout.JAVA_LONG, off), "pfn " + pfn + " handed out dirty at byte " + off);
        }
    }

    @Test
    void shouldHandOutOnlyZerosAfterABulkReleaseAndMarkThemZeroedWhileCached() {
        try (PhysicalMemory memory = PhysicalMemory.builder().bytes(8L << 20).frameCache(8, 32).build()) {
            FrameAllocator frames = memory.zone().frames();
            MemorySegment region = memory.zone().region();
            MemMap map = memory.zone().memMap();
            long[] pfns = new long[FRAMES];
            for (int i = 0; i < FRAMES; i++) {
                pfns[i] = frames.allocFrame();
                assertNotEquals(NO_FRAME, pfns[i]);
                dirty(region, pfns[i]);
            }
            Set<Long> released = new HashSet<>();
            for (long p : pfns) {
                released.add(p);
            }
            // More than a cache holds: the first ones go straight to the buddy, the last 32 stay zeroed.
            frames.putFrames(pfns.clone(), FRAMES, frames.currentCache());
            int zeroedInCache = 0;
            for (long p : released) {
                long flags = map.flagsAcquire(p);
                if ((flags & MemMap.PG_PCP) != 0) {
                    assertTrue((flags & MemMap.PG_ZEROED) != 0, "a frame cached by a bulk release is not marked zeroed");
                    assertZero(region, p);
                    zeroedInCache++;
                }
            }
            assertEquals(32, zeroedInCache, "a bulk release keeps exactly a cache's worth");
            for (int i = 0; i < FRAMES; i++) {
                long p = frames.allocZeroedFrame();
                assertZero(region, p);
                dirty(region, p);
                frames.freeFrame(p);
            }
        }
    }

    @Test
    void shouldZeroADirtyFrameFreedOneByOneOrRefilledFromTheBuddy() {
        try (PhysicalMemory memory = PhysicalMemory.builder().bytes(8L << 20).frameCache(4, 8).build()) {
            FrameAllocator frames = memory.zone().frames();
            MemorySegment region = memory.zone().region();
            long[] pfns = new long[FRAMES];
            for (int round = 0; round < 3; round++) {
                for (int i = 0; i < FRAMES; i++) {
                    pfns[i] = frames.allocZeroedFrame();
                    assertZero(region, pfns[i]);
                    dirty(region, pfns[i]);
                }
                // One by one: dirty frames enter the cache unmarked, and most overflow to the buddy.
                for (long p : pfns) {
                    frames.freeFrame(p);
                }
                frames.drainCurrentThread();
            }
        }
    }
}
