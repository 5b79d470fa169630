package dev.offmm.offheap;

import dev.offmm.offheap.frame.BuddyAllocator;
import dev.offmm.offheap.page.MemMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Construction, the reserved zero page, the frame view and the life cycle of {@link PhysicalMemory}. */
class PhysicalMemoryTest {
    private static final long MIB = 1L << 20;

    @ParameterizedTest(name = "bytes={0}")
    @ValueSource(longs = {0, -2 * MIB, 1 * MIB, 3 * MIB, 2 * MIB + 4096, (64L << 30) + 2 * MIB, Long.MAX_VALUE})
    void shouldRejectASizeThatIsNotAPositiveMultipleOf2MiBUpTo64GiB(long bytes) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PhysicalMemory.builder().bytes(bytes));
        assertTrue(e.getMessage().startsWith("bytes="), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> PhysicalMemory.create(bytes));
    }

    @Test
    void shouldRejectABadFrameCacheConfiguration() {
        PhysicalMemory.Builder b = PhysicalMemory.builder();
        assertTrue(assertThrows(IllegalArgumentException.class, () -> b.frameCache(0, 10)).getMessage().startsWith("batch=0"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> b.frameCache(8, 4)).getMessage().startsWith("high=4"));
        assertThrows(IllegalArgumentException.class, () -> b.frameCache(4097, 5000));
        assertThrows(IllegalArgumentException.class, () -> b.frameCache(1, (1 << 16) + 1));
    }

    @Test
    void shouldStartWithEveryFrameFreeExceptTheZeroPage() {
        try (PhysicalMemory memory = PhysicalMemory.create(8 * MIB)) {
            assertEquals(8 * MIB, memory.bytes());
            assertEquals(2048, memory.frameCount());
            assertEquals(2047, memory.freeFrameCount());
            assertEquals(0, memory.usedFrameCount());
            MemMap map = memory.zone().memMap();
            assertEquals(MemMap.TYPE_ZERO, map.typeAcquire(PhysicalMemory.ZERO_PFN));
            assertTrue((map.flagsAcquire(PhysicalMemory.ZERO_PFN) & MemMap.PG_RESERVED) != 0);
            assertEquals(0, memory.zone().region().address() % PhysicalMemory.HUGE_PAGE_SIZE, "the region is 2 MiB aligned");
            assertEquals(8 * MIB, memory.zone().region().byteSize());
        }
    }

    @Test
    void shouldViewAFrameAsItsSliceOfTheRegion() {
        try (PhysicalMemory memory = PhysicalMemory.create(2 * MIB)) {
            long pfn = memory.zone().allocFrames(2);
            MemorySegment block = memory.zone().frameSegment(pfn, 2);
            assertEquals(4 * PhysicalMemory.PAGE_SIZE, block.byteSize());
            assertEquals(memory.zone().region().address() + (pfn << PhysicalMemory.PAGE_SHIFT), block.address());
            block.set(ValueLayout.JAVA_LONG, 8, 0x1234L);
            assertEquals(0x1234L, memory.zone().region().get(ValueLayout.JAVA_LONG, (pfn << PhysicalMemory.PAGE_SHIFT) + 8));
            memory.zone().zeroFrames(pfn, 2);
            assertEquals(0, block.get(ValueLayout.JAVA_LONG, 8));
            assertThrows(IllegalArgumentException.class, () -> memory.zone().frameSegment(memory.frameCount() - 1, 1));
            assertThrows(IllegalArgumentException.class, () -> memory.zone().frameSegment(0, BuddyAllocator.MAX_ORDER + 1));
            assertThrows(IllegalArgumentException.class, () -> memory.zone().frameSegment(-1, 0));
            memory.zone().freeFrames(pfn, 2);
        }
    }

    @Test
    void shouldFailEveryUseAfterCloseWithIllegalStateException() {
        PhysicalMemory memory = PhysicalMemory.create(2 * MIB);
        long pfn = memory.zone().allocFrame();
        MemorySegment frame = memory.zone().frameSegment(pfn, 0);
        MemorySegment region = memory.zone().region();
        memory.close();
        assertTrue(memory.isClosed());
        assertThrows(IllegalStateException.class, memory.zone()::allocFrame);
        assertThrows(IllegalStateException.class, () -> memory.zone().allocFrames(3));
        assertThrows(IllegalStateException.class, () -> memory.zone().freeFrame(pfn));
        assertThrows(IllegalStateException.class, () -> memory.zone().freeFrames(pfn, 0));
        assertThrows(IllegalStateException.class, memory::freeFrameCount);
        assertThrows(IllegalStateException.class, memory::usedFrameCount);
        assertThrows(IllegalStateException.class, memory.zone()::frames);
        assertThrows(IllegalStateException.class, memory.zone()::memMap);
        assertThrows(IllegalStateException.class, memory.zone()::lockSlab);
        assertThrows(IllegalStateException.class, memory.zone()::region);
        assertThrows(IllegalStateException.class, () -> memory.zone().frameSegment(pfn, 0));
        assertThrows(IllegalStateException.class, () -> memory.zone().zeroFrames(pfn, 0));
        assertThrows(IllegalStateException.class, () -> frame.get(ValueLayout.JAVA_LONG, 0), "a segment taken before close");
        assertThrows(IllegalStateException.class, () -> region.set(ValueLayout.JAVA_BYTE, 0, (byte) 1));
        memory.close();
        assertTrue(memory.toString().contains("closed"), memory.toString());
    }

    @Test
    void shouldFailUseAfterCloseFromAnotherThreadToo() throws InterruptedException {
        PhysicalMemory memory = PhysicalMemory.create(2 * MIB);
        memory.close();
        Throwable[] thrown = new Throwable[1];
        Thread t = new Thread(() -> {
            try {
                memory.zone().allocFrame();
            } catch (Throwable e) {
                thrown[0] = e;
            }
        });
        t.start();
        t.join();
        assertTrue(thrown[0] instanceof IllegalStateException, String.valueOf(thrown[0]));
        assertFalse(memory.toString().contains("free"), memory.toString());
    }
}
