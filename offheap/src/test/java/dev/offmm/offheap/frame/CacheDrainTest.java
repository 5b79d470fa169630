package dev.offmm.offheap.frame;

import dev.offmm.offheap.PhysicalMemory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;

import static dev.offmm.offheap.frame.FrameAllocator.NO_FRAME;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Frames parked in the caches of live threads are not lost to the others: an allocation that
 * finds the buddy empty drains every cache ({@code drain_all_pages}) before it reports
 * exhaustion, and {@code freeFrameCount()} counts exactly what it can get.
 */
class CacheDrainTest {
    @Test
    @Timeout(30)
    void shouldDrainTheCachesOfLiveParkedThreadsBeforeReportingExhaustion() throws InterruptedException {
        int threads = 32;
        try (PhysicalMemory memory = PhysicalMemory.create(64L << 20)) {
            FrameAllocator frames = memory.zone().frames();
            long total = frames.freeFrameCount();
            CountDownLatch parked = new CountDownLatch(threads);
            CountDownLatch release = new CountDownLatch(1);
            List<Thread> ts = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                Thread th = new Thread(() -> {
                    long[] got = new long[256];
                    for (int i = 0; i < got.length; i++) {
                        got[i] = frames.allocFrame();
                    }
                    for (long pfn : got) {
                        frames.freeFrame(pfn);
                    }
                    parked.countDown();
                    try {
                        release.await();
                    } catch (InterruptedException e) {
                        throw new AssertionError(e);
                    }
                });
                th.start();
                ts.add(th);
            }
            parked.await();
            long cached = frames.cachedFrameCount();
            assertTrue(cached >= threads * 200L, "the parked threads' caches hold their frames: " + cached);
            assertEquals(total, frames.freeFrameCount(), "cached frames count as free: an allocation can get them");
            List<Long> mine = new ArrayList<>();
            for (long pfn = frames.allocFrame(); pfn != NO_FRAME; pfn = frames.allocFrame()) {
                mine.add(pfn);
            }
            assertEquals(total, mine.size(), "every frame, the live threads' cached ones included, was allocatable");
            assertEquals(0, frames.freeFrameCount());
            for (long pfn : mine) {
                frames.freeFrame(pfn);
            }
            release.countDown();
            for (Thread th : ts) {
                th.join();
            }
            frames.drainAllCaches();
            assertEquals(total, frames.freeFrameCount());
            assertEquals(0, frames.cachedFrameCount());
        }
    }

    @Test
    void shouldForgetTheCachesOfDeadThreadsAsTheyAccumulate() throws InterruptedException {
        try (PhysicalMemory memory = PhysicalMemory.create(16L << 20)) {
            FrameAllocator frames = memory.zone().frames();
            long total = frames.freeFrameCount();
            for (int t = 0; t < 500; t++) {
                Thread th = new Thread(() -> frames.freeFrame(frames.allocFrame()));
                th.start();
                th.join();
            }
            assertTrue(frames.cacheCount() <= 8, "dead threads' caches were reaped as they accumulated: " + frames.cacheCount());
            frames.drainAllCaches();
            assertEquals(total, frames.freeFrameCount());
        }
    }

    @Test
    void shouldBoundACacheByAConstantWhateverTheMemorySize() {
        try (PhysicalMemory memory = PhysicalMemory.create(256L << 20)) {
            FrameAllocator frames = memory.zone().frames();
            long[] got = new long[4096];
            for (int i = 0; i < got.length; i++) {
                got[i] = frames.allocFrame();
            }
            for (long pfn : got) {
                frames.freeFrame(pfn);
            }
            assertTrue(frames.cachedFrameCount() <= PhysicalMemory.DEFAULT_CACHE_HIGH,
                    "a 256 MiB memory's cache (1/64 would be 1024 frames) stays within the bound: "
                            + frames.cachedFrameCount());
        }
    }
}
