package dev.offmm.offheap.frame;

import dev.offmm.offheap.HostMemoryException;
import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.host.HostCallException;
import dev.offmm.offheap.host.HostMemory;
import dev.offmm.offheap.inject.FailSite;
import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.page.PageSize;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BooleanSupplier;

import static dev.offmm.offheap.frame.FrameAllocator.NO_FRAME;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Physical memory reserved from the host: nothing committed or initialised at create, memory
 * online as it is used, free 2 MiB blocks reported back to the host, handed out again as zeros,
 * and the host's refusals reported as offmm's errors. RSS figures come from
 * {@code /proc/self/status}; the bounds are generous (a few MiB of JIT and class data move
 * meanwhile), the effects measured are hundreds of MiB.
 */
class HostBackingTest {
    private static final long MIB = 1L << 20;
    private static final long BLOCK = PageSize.HUGE_BYTES;

    static long rssBytes() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        throw new IllegalStateException("no VmRSS in /proc/self/status");
    }

    /**
     * The host memory resident in the mapping that holds {@code region}'s first byte, from
     * {@code /proc/self/smaps}: exact for the region, unlike the process RSS, which the JIT,
     * the heap and other tests move by megabytes.
     */
    static long regionRssBytes(MemorySegment region) {
        long address = region.address();
        try {
            boolean inside = false;
            for (String line : Files.readAllLines(Path.of("/proc/self/smaps"))) {
                int dash = line.indexOf('-');
                int space = line.indexOf(' ');
                if (dash > 0 && space > dash && line.substring(0, dash).matches("[0-9a-f]+")) {
                    long start = Long.parseUnsignedLong(line.substring(0, dash), 16);
                    long end = Long.parseUnsignedLong(line.substring(dash + 1, space), 16);
                    inside = address >= start && address < end;
                } else if (inside && line.startsWith("Rss:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        throw new IllegalStateException("no mapping holds 0x" + Long.toHexString(address));
    }

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("timed out waiting until " + what);
            }
            Thread.sleep(5);
        }
    }

    private static void fill(MemorySegment block, long value) {
        for (long off = 0; off < block.byteSize(); off += 8) {
            block.set(ValueLayout.JAVA_LONG, off, value);
        }
    }

    private static long firstNonZero(MemorySegment block) {
        for (long off = 0; off < block.byteSize(); off += 8) {
            if (block.get(ValueLayout.JAVA_LONG, off) != 0) {
                return off;
            }
        }
        return -1;
    }

    @Test
    void shouldReserveTheLargestCapacityWithoutCommittingOrInitialisingIt() {
        long before = rssBytes();
        try (PhysicalMemory memory = PhysicalMemory.create(PhysicalMemory.MAX_BYTES)) {
            long grown = rssBytes() - before;
            assertTrue(grown < 8 * MIB, "64 GiB reserved grew RSS by " + (grown >> 10) + " KiB");
            assertEquals(PhysicalMemory.MAX_BYTES >>> PageSize.SHIFT, memory.frameCount());
            assertEquals(BLOCK >>> PageSize.SHIFT, memory.onlineFrameCount(), "only the zero page's block is online");
            assertEquals(memory.frameCount() - 1, memory.freeFrameCount());
            assertEquals(0, memory.committedBytes() - PageSize.BYTES, "only the zero page counts as committed");
            assertEquals(PhysicalMemory.MAX_BYTES + (memory.frameCount() << MemMap.RECORD_SHIFT), memory.reservedBytes());
            // The top of memory is still allocatable, block by block.
            long pfn = memory.zone().allocFrames(BuddyAllocator.MAX_ORDER);
            assertEquals(BLOCK >>> PageSize.SHIFT, pfn, "the next block comes online");
            assertEquals(2 * (BLOCK >>> PageSize.SHIFT), memory.onlineFrameCount());
            memory.zone().freeFrames(pfn, BuddyAllocator.MAX_ORDER);
        }
    }

    @Test
    void shouldBringMemoryOnlineOnlyAsItIsHandedOut() {
        try (PhysicalMemory memory = PhysicalMemory.builder().bytes(64 * MIB).reporting(false).build()) {
            FrameAllocator frames = memory.zone().frames();
            List<Long> got = new ArrayList<>();
            long pfn;
            long highest = 0;
            while ((pfn = frames.allocFrame()) != NO_FRAME) {
                got.add(pfn);
                highest = Math.max(highest, pfn);
                // A refill takes a batch (under 64 frames), which may carve one block ahead.
                long online = memory.onlineFrameCount();
                assertTrue(online - (highest + 1) < 2 * (BLOCK >>> PageSize.SHIFT), "online " + online
                        + " far above the highest frame handed out, " + highest);
            }
            assertEquals(memory.frameCount() - 1, got.size(), "every frame but the zero page, online or not, is allocatable");
            assertEquals(memory.frameCount(), memory.onlineFrameCount());
            for (long p : got) {
                frames.freeFrame(p);
            }
            frames.drainAllCaches();
            assertEquals(memory.frameCount() - 1, memory.freeFrameCount());
        }
    }

    @Test
    void shouldReportFreeBlocksAndHandThemOutAgainAsZeros() throws InterruptedException {
        try (PhysicalMemory memory = PhysicalMemory.builder().bytes(64 * MIB).reportFreeAfter(Duration.ZERO).build()) {
            List<Long> blocks = new ArrayList<>();
            long pfn;
            while ((pfn = memory.zone().allocFrames(BuddyAllocator.MAX_ORDER)) != NO_FRAME) {
                fill(memory.zone().frameSegment(pfn, BuddyAllocator.MAX_ORDER), 0x5a5a_5a5a_5a5a_5a5aL ^ pfn);
                blocks.add(pfn);
            }
            assertEquals(31, blocks.size());
            long reportedBefore = memory.reportedFrameCount();
            for (long b : blocks) {
                memory.zone().freeFrames(b, BuddyAllocator.MAX_ORDER);
            }
            await(() -> memory.reportedBlocks() >= 31, "31 freed blocks are reported (" + memory.reportedBlocks() + ")");
            assertEquals(reportedBefore + 31 * (BLOCK >>> PageSize.SHIFT), memory.reportedFrameCount());
            assertEquals(0, memory.failedReports());
            // Order-0 frames carved from reported blocks come out of the buddy zeroed, unwritten.
            FrameAllocator frames = memory.zone().frames();
            MemMap map = memory.zone().memMap();
            for (int i = 0; i < 600; i++) {
                long f = frames.allocZeroedFrame();
                assertTrue(f != NO_FRAME);
                assertEquals(-1, firstNonZero(memory.zone().frameSegment(f, 0)), "pfn " + f + " came back dirty");
                assertEquals(MemMap.withOrder(MemMap.PG_ALLOCATED, 0), map.flagsAcquire(f));
            }
        }
    }

    @Test
    void shouldGiveTheMemoryBackSoThatRssFalls() throws InterruptedException {
        try (PhysicalMemory memory = PhysicalMemory.builder().bytes(512 * MIB).reportFreeAfter(Duration.ZERO).build()) {
            MemorySegment region = memory.zone().region();
            assertTrue(regionRssBytes(region) < MIB, "a new region holds " + (regionRssBytes(region) >> 10) + " KiB");
            List<Long> blocks = new ArrayList<>();
            for (int i = 0; i < 128; i++) {
                long pfn = memory.zone().allocFrames(BuddyAllocator.MAX_ORDER);
                fill(memory.zone().frameSegment(pfn, BuddyAllocator.MAX_ORDER), i + 1);
                blocks.add(pfn);
            }
            assertEquals(256 * MIB, regionRssBytes(region), "writing 256 MiB commits 256 MiB");
            for (long b : blocks) {
                memory.zone().freeFrames(b, BuddyAllocator.MAX_ORDER);
            }
            await(() -> memory.reportedBlocks() >= 128, "the 128 blocks are reported (" + memory.reportedBlocks() + ")");
            assertTrue(regionRssBytes(region) < MIB, "the region still holds " + (regionRssBytes(region) >> 10) + " KiB");
            assertTrue(memory.committedBytes() < MIB, "committed estimate " + (memory.committedBytes() >> 10) + " KiB");
        }
    }

    @Test
    void shouldDrainTheCacheOfAParkedThreadSoItsBlocksAreReported() throws InterruptedException {
        try (PhysicalMemory memory = PhysicalMemory.builder().bytes(16 * MIB).reportFreeAfter(Duration.ZERO).build()) {
            FrameAllocator frames = memory.zone().frames();
            java.util.concurrent.CountDownLatch freed = new java.util.concurrent.CountDownLatch(1);
            java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
            Thread worker = new Thread(() -> {
                long[] got = new long[2048];
                for (int i = 0; i < got.length; i++) {
                    got[i] = frames.allocFrame();
                }
                for (long p : got) {
                    frames.freeFrame(p);
                }
                freed.countDown();
                try {
                    release.await(); // parked, its cache full: the README's pattern of a quiet thread
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }, "parked-with-a-full-cache");
            worker.start();
            freed.await();
            await(() -> memory.cachedFrameCount() == 0,
                    "the parked thread's cache is drained (" + memory.cachedFrameCount() + ")");
            await(() -> memory.reportedBlocks() >= 4, "its four blocks merge and are reported (" + memory.reportedBlocks() + ")");
            assertTrue(memory.committedBytes() <= 2 * BLOCK, "committed estimate " + (memory.committedBytes() >> 10) + " KiB");
            release.countDown();
            worker.join();
        }
    }

    @Test
    void shouldLeaveABlockUnreportedAndIntactWhenTheHostCallFails() throws InterruptedException {
        try (PhysicalMemory memory = PhysicalMemory.builder().bytes(16 * MIB).reportFreeAfter(Duration.ZERO).build()) {
            memory.zone().failPoints().failAlways(FailSite.REPORT);
            long pfn = memory.zone().allocFrames(BuddyAllocator.MAX_ORDER);
            fill(memory.zone().frameSegment(pfn, BuddyAllocator.MAX_ORDER), 0x77);
            long reported = memory.reportedFrameCount();
            memory.zone().freeFrames(pfn, BuddyAllocator.MAX_ORDER);
            await(() -> memory.failedReports() >= 2, "the report is tried and fails");
            assertEquals(0, memory.reportedBlocks());
            assertEquals(reported, memory.reportedFrameCount());
            assertEquals(memory.frameCount() - 1, memory.freeFrameCount(), "the block is still free (or isolated)");
            // Still armed, so no later pass can discard it: the free block's bytes are all there.
            MemorySegment bytes = memory.zone().frameSegment(pfn, BuddyAllocator.MAX_ORDER);
            assertEquals(0x77, bytes.get(ValueLayout.JAVA_LONG, 0), "nothing was discarded");
            assertEquals(0x77, bytes.get(ValueLayout.JAVA_LONG, BLOCK - 8), "nothing was discarded");
            memory.zone().failPoints().disarmAll();
            await(() -> memory.reportedBlocks() >= 1, "disarmed, the block is reported after all");
        }
    }

    @Test
    void shouldZeroLazilyFreedMemoryWhenItIsReused() throws InterruptedException {
        try (PhysicalMemory memory = PhysicalMemory.builder().bytes(8 * MIB).reportFreeAfter(Duration.ZERO)
                .discard(PhysicalMemory.Discard.FREE).build()) {
            FrameAllocator frames = memory.zone().frames();
            long pfn = memory.zone().allocFrames(BuddyAllocator.MAX_ORDER);
            fill(memory.zone().frameSegment(pfn, BuddyAllocator.MAX_ORDER), -1L);
            memory.zone().freeFrames(pfn, BuddyAllocator.MAX_ORDER);
            await(() -> memory.reportedBlocks() >= 1, "the block is reported");
            // MADV_FREE keeps the bytes until the host needs the memory: not known to be zero.
            for (int i = 0; i < 1024; i++) {
                long f = frames.allocZeroedFrame();
                if (f == NO_FRAME) {
                    break;
                }
                assertEquals(-1, firstNonZero(memory.zone().frameSegment(f, 0)), "pfn " + f + " came back dirty");
            }
        }
    }

    @Test
    void shouldCommitEverythingUpFrontWhenAsked() {
        try (PhysicalMemory memory = PhysicalMemory.builder().bytes(64 * MIB).commitUpFront(true).build()) {
            assertEquals(64 * MIB, regionRssBytes(memory.zone().region()), "MAP_POPULATE commits the whole region");
            assertEquals(64 * MIB, memory.committedBytes());
            assertEquals(0, memory.reportedBlocks());
        }
    }

    @Test
    void shouldReportTheHostsRefusalWithItsErrno() {
        HostCallException e = assertThrows(HostCallException.class,
                () -> HostMemory.reserve(1L << 52, BLOCK, false, false, Arena.ofAuto()));
        assertEquals("mmap", e.call());
        assertEquals(HostMemory.ENOMEM, e.errno());
        HostMemoryException m = new HostMemoryException(PhysicalMemory.MAX_BYTES, "mmap", HostMemory.ENOMEM, e);
        assertTrue(m.getMessage().contains("68719476736 bytes") && m.getMessage().contains("ENOMEM"), m.getMessage());
    }

    @Test
    void shouldRejectBadBuilderInput() {
        assertThrows(IllegalArgumentException.class, () -> PhysicalMemory.builder().reportFreeAfter(Duration.ofMillis(-1)));
        assertThrows(IllegalArgumentException.class, () -> PhysicalMemory.builder().reportFreeAfter(null));
        assertThrows(IllegalArgumentException.class, () -> PhysicalMemory.builder().reportFreeAfter(Duration.ofDays(2)));
        assertThrows(IllegalArgumentException.class, () -> PhysicalMemory.builder().discard(null));
        assertThrows(IllegalArgumentException.class, () -> PhysicalMemory.builder().capacity(PhysicalMemory.MAX_BYTES * 2));
        assertThrows(IllegalArgumentException.class, () -> PhysicalMemory.builder().capacity(3 * MIB));
    }
}
