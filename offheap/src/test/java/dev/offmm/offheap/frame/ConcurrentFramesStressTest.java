package dev.offmm.offheap.frame;

import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.PhysicalMemory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;

import static dev.offmm.offheap.frame.FrameAllocator.NO_FRAME;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Stress: threads allocate, free and hand each other frames of mixed orders. Every frame of a
 * block received is claimed in mem_map with {@code casTag(pfn, 0, threadTag)}.
 *
 * <p>Forbidden outcomes: a claim CAS fails (a frame handed to two holders at once); a tag changed
 * while its holder held the frame; any frame not free, or any tag left set, once every thread
 * has ended and the dead threads' caches are reaped.
 */
class ConcurrentFramesStressTest {
    private static final int THREADS = 4;
    private static final int OPS_PER_THREAD = 150_000;
    private static final int MAX_HELD = 200;

    private record Block(long pfn, int order, int tag) {
    }

    @ParameterizedTest(name = "cache batch={0} high={1}")
    @CsvSource({"31, 93", "2, 5"})
    @Timeout(60)
    void shouldNeverHandTheSameFrameToTwoThreads(int batch, int high) throws InterruptedException {
        try (PhysicalMemory memory = PhysicalMemory.builder().bytes(8L << 20).frameCache(batch, high).build()) {
            BuddyState initial = BuddyState.of(memory);
            MemMap map = memory.zone().memMap();
            AtomicReference<String> failure = new AtomicReference<>();
            ConcurrentLinkedQueue<Block> handoff = new ConcurrentLinkedQueue<>();
            CountDownLatch start = new CountDownLatch(1);
            long[] allocations = new long[THREADS];
            List<Thread> threads = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                int index = t;
                threads.add(new Thread(() -> {
                    try {
                        start.await();
                        allocations[index] = churn(memory, map, index + 1, new SplittableRandom(index * 7919L), handoff, failure);
                    } catch (Throwable e) {
                        failure.compareAndSet(null, "thread " + index + ": " + e);
                    }
                }, "churn-" + t));
            }
            threads.forEach(Thread::start);
            start.countDown();
            for (Thread t : threads) {
                t.join();
            }
            assertNull(failure.get());
            // Blocks left in the hand-off queue are owned by nobody: drain them here.
            for (Block b; (b = handoff.poll()) != null;) {
                release(memory, map, b, b.tag(), failure);
            }
            assertNull(failure.get());
            for (long n : allocations) {
                assertTrue(n > OPS_PER_THREAD / 4, "each thread allocated a lot: " + n);
            }

            memory.zone().frames().reapDeadCaches();
            memory.zone().frames().drainCurrentThread();
            BuddyState.of(memory).assertSameAs(initial);
            for (long pfn = 0; pfn < memory.frameCount(); pfn++) {
                assertEquals(0, map.tagVolatile(pfn), "tag of pfn " + pfn);
            }
        }
    }

    private static long churn(PhysicalMemory memory, MemMap map, int tag, SplittableRandom random,
            ConcurrentLinkedQueue<Block> handoff, AtomicReference<String> failure) {
        List<Block> held = new ArrayList<>();
        long allocations = 0;
        for (int op = 0; op < OPS_PER_THREAD && failure.get() == null; op++) {
            int dice = random.nextInt(100);
            if (dice < 3 && !held.isEmpty()) {
                handoff.add(held.remove(random.nextInt(held.size())));
            } else if (dice < 6) {
                Block given = handoff.poll();
                if (given != null) {
                    for (long f = given.pfn(); f < given.pfn() + (1L << given.order()); f++) {
                        if (!map.casTag(f, given.tag(), tag)) {
                            fail(failure, "pfn " + f + " handed over by " + given.tag() + " has tag " + map.tagVolatile(f));
                        }
                    }
                    held.add(new Block(given.pfn(), given.order(), tag));
                }
            } else if (dice < 50 && !held.isEmpty() || held.size() >= MAX_HELD) {
                release(memory, map, held.remove(random.nextInt(held.size())), tag, failure);
            } else {
                int order = dice < 90 ? 0 : dice < 98 ? 1 + random.nextInt(3) : BuddyAllocator.MAX_ORDER;
                long pfn = memory.zone().allocFrames(order);
                if (pfn == NO_FRAME) {
                    continue;
                }
                allocations++;
                for (long f = pfn; f < pfn + (1L << order); f++) {
                    if (!map.casTag(f, 0, tag)) {
                        fail(failure, "pfn " + f + " (block " + pfn + " order " + order + ") received by " + tag
                                + " is still held by " + map.tagVolatile(f));
                    }
                }
                held.add(new Block(pfn, order, tag));
            }
        }
        for (Block b : held) {
            release(memory, map, b, tag, failure);
        }
        return allocations;
    }

    private static void release(PhysicalMemory memory, MemMap map, Block b, int tag, AtomicReference<String> failure) {
        for (long f = b.pfn(); f < b.pfn() + (1L << b.order()); f++) {
            int seen = map.tagVolatile(f);
            if (seen != tag) {
                fail(failure, "pfn " + f + " held by " + tag + " was retagged to " + seen);
            }
            map.setTagVolatile(f, 0);
        }
        memory.zone().freeFrames(b.pfn(), b.order());
    }

    private static void fail(AtomicReference<String> failure, String message) {
        failure.compareAndSet(null, message);
        throw new AssertionError(message);
    }

    /** Control: the claim check catches a frame that is handed out again while its old holder still uses it. */
    @Test
    void shouldCatchAFrameHandedOutAgainWhileStillClaimed() {
        try (PhysicalMemory memory = PhysicalMemory.create(2L << 20)) {
            MemMap map = memory.zone().memMap();
            long pfn = memory.zone().allocFrame();
            assertTrue(map.casTag(pfn, 0, 1));
            memory.zone().freeFrame(pfn); // broken holder: frees without dropping its claim
            long again = memory.zone().allocFrame();
            assertEquals(pfn, again, "the per-thread cache is LIFO");
            assertFalse(map.casTag(again, 0, 2), "the second holder's claim fails");
            assertNotEquals(2, map.tagVolatile(again));
            map.setTagVolatile(again, 0);
            memory.zone().freeFrame(again);
        }
    }
}
