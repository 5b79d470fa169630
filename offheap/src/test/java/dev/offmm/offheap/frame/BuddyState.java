package dev.offmm.offheap.frame;

import dev.offmm.offheap.PhysicalMemory;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A snapshot of the buddy allocator's free state: free frames and free blocks per order. With
 * eager coalescing the free-block structure is a function of the set of free frames, so two
 * snapshots taken with the same frames free (and every cache drained) must be equal.
 */
record BuddyState(long freeFrames, long[] blocksPerOrder) {

    static BuddyState of(PhysicalMemory memory) {
        BuddyAllocator buddy = memory.zone().frames().buddy();
        long[] blocks = new long[BuddyAllocator.MAX_ORDER + 1];
        for (int order = 0; order <= BuddyAllocator.MAX_ORDER; order++) {
            blocks[order] = buddy.freeBlocks(order);
        }
        return new BuddyState(memory.freeFrameCount(), blocks);
    }

    void assertSameAs(BuddyState other) {
        assertEquals(freeFrames, other.freeFrames, "free frames");
        assertEquals(Arrays.toString(blocksPerOrder), Arrays.toString(other.blocksPerOrder), "free blocks per order 0..9");
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof BuddyState s && s.freeFrames == freeFrames && Arrays.equals(s.blocksPerOrder, blocksPerOrder);
    }

    @Override
    public int hashCode() {
        return Long.hashCode(freeFrames) * 31 + Arrays.hashCode(blocksPerOrder);
    }

    @Override
    public String toString() {
        return "BuddyState[free=" + freeFrames + ", blocks=" + Arrays.toString(blocksPerOrder) + "]";
    }
}
