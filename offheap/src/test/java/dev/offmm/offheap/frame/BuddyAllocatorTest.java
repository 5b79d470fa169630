package dev.offmm.offheap.frame;

import dev.offmm.offheap.PhysicalMemory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.LongStream;
import java.util.stream.Stream;

import static dev.offmm.offheap.frame.FrameAllocator.NO_FRAME;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The buddy allocator and the per-thread cache in front of it, single-threaded, against a reference model. */
class BuddyAllocatorTest {
    private static final long STAMP_SALT = 0x5eed_f00d_0000_0000L;

    private record Block(long pfn, int order) {
    }

    static Stream<Arguments> seedsAndCaches() {
        return LongStream.of(1, 2, 3, 42, 1234567).boxed()
                .flatMap(seed -> Stream.of(Arguments.of(seed, 31, 93), Arguments.of(seed, 2, 5)));
    }

    @ParameterizedTest(name = "seed={0}, cache batch={1} high={2}")
    @MethodSource("seedsAndCaches")
    void shouldCoalesceBackToInitialFreeStateAfterRandomAllocAndFree(long seed, int batch, int high) {
        try (PhysicalMemory memory = PhysicalMemory.builder().bytes(16L << 20).frameCache(batch, high).build()) {
            BuddyState initial = BuddyState.of(memory);
            long usable = memory.frameCount() - 1;
            assertEquals(usable, initial.freeFrames(), "every frame but the zero page starts free");

            SplittableRandom random = new SplittableRandom(seed);
            BitSet model = new BitSet((int) memory.frameCount());
            List<Block> live = new ArrayList<>();
            long liveFrames = 0;
            int highOrderSuccesses = 0;
            for (int op = 0; op < 20_000; op++) {
                if (!live.isEmpty() && random.nextInt(100) < 45) {
                    Block b = live.remove(random.nextInt(live.size()));
                    release(memory, model, b);
                    liveFrames -= 1L << b.order();
                } else {
                    int order = random.nextInt(100) < 60 ? 0 : 1 + random.nextInt(BuddyAllocator.MAX_ORDER);
                    long pfn = memory.zone().allocFrames(order);
                    if (pfn == NO_FRAME) {
                        if (order == 0) {
                            assertEquals(0, memory.freeFrameCount(), "order 0 may fail only when no frame is free");
                        }
                        continue;
                    }
                    Block b = new Block(pfn, order);
                    take(memory, model, b);
                    live.add(b);
                    liveFrames += 1L << order;
                    if (order > 0) {
                        highOrderSuccesses++;
                    }
                }
                assertEquals(usable, memory.freeFrameCount() + liveFrames, "free + allocated frames at op " + op);
            }
            assertTrue(highOrderSuccesses > 100, "the sequence exercised higher orders: " + highOrderSuccesses);

            while (!live.isEmpty()) {
                release(memory, model, live.remove(random.nextInt(live.size())));
            }
            memory.zone().frames().drainCurrentThread();
            assertTrue(model.isEmpty());
            BuddyState.of(memory).assertSameAs(initial);
            assertEquals(0, memory.usedFrameCount());
        }
    }

    private static void take(PhysicalMemory memory, BitSet model, Block b) {
        long frames = 1L << b.order();
        assertNotEquals(PhysicalMemory.ZERO_PFN, b.pfn(), "the zero page is never handed out");
        assertEquals(0, b.pfn() & (frames - 1), "pfn " + b.pfn() + " is naturally aligned for order " + b.order());
        assertTrue(b.pfn() + frames <= memory.frameCount(), "block inside the region");
        int from = (int) b.pfn();
        int to = (int) (b.pfn() + frames);
        int clash = model.nextSetBit(from);
        assertTrue(clash < 0 || clash >= to, () -> "block " + b + " overlaps allocated frame " + clash);
        model.set(from, to);
        MemorySegment bytes = memory.zone().frameSegment(b.pfn(), b.order());
        bytes.set(ValueLayout.JAVA_LONG, 0, b.pfn() ^ STAMP_SALT);
        bytes.set(ValueLayout.JAVA_LONG, bytes.byteSize() - 8, ~b.pfn());
    }

    private static void release(PhysicalMemory memory, BitSet model, Block b) {
        MemorySegment bytes = memory.zone().frameSegment(b.pfn(), b.order());
        assertEquals(b.pfn() ^ STAMP_SALT, bytes.get(ValueLayout.JAVA_LONG, 0), "stamp at the start of " + b);
        assertEquals(~b.pfn(), bytes.get(ValueLayout.JAVA_LONG, bytes.byteSize() - 8), "stamp at the end of " + b);
        model.clear((int) b.pfn(), (int) (b.pfn() + (1L << b.order())));
        memory.zone().freeFrames(b.pfn(), b.order());
    }

    @Test
    void shouldHandOutOrder9BlocksAlignedTo2MiB() {
        try (PhysicalMemory memory = PhysicalMemory.create(64L << 20)) {
            List<Long> blocks = new ArrayList<>();
            long pfn;
            while ((pfn = memory.zone().allocFrames(BuddyAllocator.MAX_ORDER)) != NO_FRAME) {
                blocks.add(pfn);
                assertEquals(0, pfn % 512, "pfn " + pfn + " is a multiple of 512");
                MemorySegment bytes = memory.zone().frameSegment(pfn, BuddyAllocator.MAX_ORDER);
                assertEquals(0, bytes.address() % PhysicalMemory.HUGE_PAGE_SIZE,
                        "address 0x" + Long.toHexString(bytes.address()) + " is 2 MiB aligned");
                assertEquals(PhysicalMemory.HUGE_PAGE_SIZE, bytes.byteSize());
            }
            // 32 blocks of 2 MiB, minus the first, which holds the reserved zero page.
            assertEquals(31, blocks.size());
            assertEquals(31, blocks.stream().distinct().count());
            for (long b : blocks) {
                memory.zone().freeFrames(b, BuddyAllocator.MAX_ORDER);
            }
            assertEquals(31, memory.zone().frames().buddy().freeBlocks(BuddyAllocator.MAX_ORDER));
        }
    }

    @Test
    void shouldReturnNoFrameOnExhaustionAndBeUsableAgainAfterFrees() {
        try (PhysicalMemory memory = PhysicalMemory.create(PhysicalMemory.HUGE_PAGE_SIZE)) {
            BuddyState initial = BuddyState.of(memory);
            assertEquals(NO_FRAME, memory.zone().allocFrames(BuddyAllocator.MAX_ORDER),
                    "the only 2 MiB block holds the zero page");

            List<Long> frames = new ArrayList<>();
            long pfn;
            while ((pfn = memory.zone().allocFrame()) != NO_FRAME) {
                frames.add(pfn);
            }
            assertEquals(memory.frameCount() - 1, frames.size(), "every frame but the zero page was handed out");
            assertEquals(0, memory.freeFrameCount());
            assertEquals(NO_FRAME, memory.zone().allocFrame(), "exhaustion is a result, repeatedly");
            for (int order = 1; order <= BuddyAllocator.MAX_ORDER; order++) {
                assertEquals(NO_FRAME, memory.zone().allocFrames(order), "order " + order);
            }

            for (long f : frames) {
                memory.zone().freeFrame(f);
            }
            long again = memory.zone().allocFrame();
            assertNotEquals(NO_FRAME, again);
            memory.zone().freeFrame(again);
            memory.zone().frames().drainCurrentThread();
            BuddyState.of(memory).assertSameAs(initial);
            long block = memory.zone().allocFrames(8);
            assertEquals(256, block, "the upper half of the region coalesced into one order-8 block");
            memory.zone().freeFrames(block, 8);
        }
    }

    @Test
    void shouldReapTheCacheOfADeadThreadBeforeReportingExhaustion() throws InterruptedException {
        try (PhysicalMemory memory = PhysicalMemory.create(PhysicalMemory.HUGE_PAGE_SIZE)) {
            Thread t = new Thread(() -> memory.zone().freeFrame(memory.zone().allocFrame()));
            t.start();
            t.join();
            assertTrue(memory.zone().frames().buddy().freeFrames() < memory.frameCount() - 1,
                    "the dead thread's cache holds frames");
            long n = 0;
            while (memory.zone().allocFrame() != NO_FRAME) {
                n++;
            }
            assertEquals(memory.frameCount() - 1, n, "frames parked in a dead thread's cache were reaped");
        }
    }

    @Test
    void shouldFreeOnlyWhenTheLastReferenceIsPut() {
        try (PhysicalMemory memory = PhysicalMemory.create(PhysicalMemory.HUGE_PAGE_SIZE)) {
            BuddyState initial = BuddyState.of(memory);
            long pfn = memory.zone().allocFrames(2);
            assertEquals(1, memory.zone().memMap().refcountVolatile(pfn));
            assertEquals(2, memory.zone().memMap().addAndGetRefcount(pfn, 1));
            memory.zone().frames().putFrames(pfn, 2);
            assertEquals(1, memory.zone().memMap().refcountVolatile(pfn));
            assertEquals(4, memory.usedFrameCount(), "still allocated while one reference remains");
            memory.zone().frames().putFrames(pfn, 2);
            assertEquals(0, memory.usedFrameCount(), "freed at zero");
            BuddyState.of(memory).assertSameAs(initial);
        }
    }

    @Test
    void shouldCountOrder0FramesParkedInTheCacheAsFree() {
        try (PhysicalMemory memory = PhysicalMemory.create(PhysicalMemory.HUGE_PAGE_SIZE)) {
            long pfn = memory.zone().allocFrame();
            assertEquals(1, memory.usedFrameCount());
            memory.zone().freeFrame(pfn);
            assertEquals(0, memory.usedFrameCount());
            assertFalse(memory.zone().frames().buddy().freeFrames() == memory.frameCount() - 1,
                    "the freed frame is parked in the cache, not in the buddy lists");
            memory.zone().frames().drainCurrentThread();
            assertEquals(memory.frameCount() - 1, memory.zone().frames().buddy().freeFrames());
        }
    }
}
