package dev.offmm.offheap.frame;

import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.inject.FailPoints;
import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.page.PageSize;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;

import static dev.offmm.offheap.frame.FrameAllocator.NO_FRAME;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Free page reporting gives back the struct pages of a reported 2 MiB block too: the seven
 * mem_map host pages that hold only its tail records (28 KiB of its 32 KiB). Forbidden outcomes:
 * {@code structPageBytes()} not 28 KiB lower per reported block (or lower without reporting);
 * the mem_map still resident; a records call made for a block that is not isolated; a frame
 * handed out again with metadata other than what a fresh frame has (flags, refcount, mapcount,
 * type, ptl, owner, tag); a failed records call that changes a record or the accounting; frames
 * missing or tags left set once every thread is done.
 */
class StructPageReportingTest {
    private static final long KIB = 1024;
    private static final long MIB = 1L << 20;
    private static final int ORDER = BuddyAllocator.MAX_ORDER;
    private static final int NR = 1 << ORDER;
    /** Bytes of mem_map given back per reported block. */
    private static final long BACK_PER_BLOCK = 28 * KIB;
    private static final long ALLOCATED_ORDER0 = MemMap.withOrder(MemMap.PG_ALLOCATED, 0);
    private static final long ALLOCATED_HUGE = MemMap.withOrder(MemMap.PG_ALLOCATED, ORDER);

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("timed out waiting until " + what);
            }
            Thread.sleep(5);
        }
    }

    /** {start, end, rss bytes} of the mapping in /proc/self/smaps that holds {@code address}. */
    private static long[] mapping(long address) {
        try {
            long start = 0;
            long end = 0;
            boolean inside = false;
            for (String line : Files.readAllLines(Path.of("/proc/self/smaps"))) {
                int dash = line.indexOf('-');
                int space = line.indexOf(' ');
                if (dash > 0 && space > dash && line.substring(0, dash).matches("[0-9a-f]+")) {
                    start = Long.parseUnsignedLong(line.substring(0, dash), 16);
                    end = Long.parseUnsignedLong(line.substring(dash + 1, space), 16);
                    inside = address >= start && address < end;
                } else if (inside && line.startsWith("Rss:")) {
                    return new long[] {start, end, Long.parseLong(line.replaceAll("[^0-9]", "")) * KIB};
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        throw new IllegalStateException("no mapping holds 0x" + Long.toHexString(address));
    }

    /** Fails unless the record of {@code pfn} is what a frame just handed out with {@code flags} holds. */
    private static void assertFresh(MemMap map, long pfn, long flags, int refcount) {
        assertEquals(flags, map.flagsAcquire(pfn), "flags of pfn " + pfn);
        assertEquals(refcount, map.refcountVolatile(pfn), "refcount of pfn " + pfn);
        assertEquals(0, map.mapcountVolatile(pfn), "mapcount of pfn " + pfn);
        assertEquals(MemMap.TYPE_NONE, map.typeAcquire(pfn), "type of pfn " + pfn);
        assertEquals(0, map.ptlAcquire(pfn), "ptl of pfn " + pfn);
        assertEquals(0, map.ownerPlain(pfn), "owner of pfn " + pfn);
        assertEquals(0, map.tagVolatile(pfn), "tag of pfn " + pfn);
    }

    private static long mapHeads(MemMap map, long online) {
        long n = 0;
        for (long pfn = NR; pfn < online; pfn += NR) {
            if ((map.flagsAcquire(pfn) & MemMap.PG_MAP_REPORTED) != 0) {
                n++;
            }
        }
        return n;
    }

    @Test
    @Timeout(120)
    void shouldGiveBackTheTailRecordsOfEveryReportedBlockAndHandThemOutAgainAsFresh() throws InterruptedException {
        int blocks = 128;
        try (PhysicalMemory memory = PhysicalMemory.builder().bytes(512 * MIB).reportFreeAfter(Duration.ZERO).build()) {
            FrameAllocator frames = memory.zone().frames();
            MemMap map = memory.zone().memMap();
            long records = map.segment().address();
            long[] where = mapping(records);
            long region = memory.zone().region().address();
            assertFalse(region >= where[0] && region < where[1], "the mem_map shares a mapping with the frames");

            // Huge frames write every tail record (refcount 1): all 8 host pages of each block's records.
            List<Long> huge = new ArrayList<>();
            for (int i = 0; i < blocks; i++) {
                long pfn = frames.huge().alloc(false);
                assertTrue(pfn != NO_FRAME);
                huge.add(pfn);
            }
            long structBefore = memory.structPageBytes();
            long rssBefore = mapping(records)[2];
            assertTrue(rssBefore >= blocks * MemMap.BLOCK_RECORD_BYTES, "mem_map holds " + (rssBefore / KIB) + " KiB");
            for (long pfn : huge) {
                frames.huge().freeUnused(pfn);
            }
            await(() -> memory.reportedBlocks() >= blocks && frames.memMapBytesGivenBack() >= blocks * BACK_PER_BLOCK,
                    "the blocks and their records are reported (" + memory.reportedBlocks() + ", "
                    + frames.memMapBytesGivenBack() + " bytes)");
            long structAfter = memory.structPageBytes();
            long rssAfter = mapping(records)[2];
            System.out.printf("structPageBytes %d KiB -> %d KiB; mem_map RSS %d KiB -> %d KiB (%d blocks)%n",
                    structBefore / KIB, structAfter / KIB, rssBefore / KIB, rssAfter / KIB, blocks);
            assertEquals(blocks * BACK_PER_BLOCK, structBefore - structAfter, "28 KiB of struct pages per block");
            assertEquals(0, memory.failedReports());
            assertTrue(rssBefore - rssAfter >= blocks * BACK_PER_BLOCK, "mem_map RSS fell only "
                    + ((rssBefore - rssAfter) / KIB) + " KiB");
            // The heads' pages, and block 0's records (the zero page's block, never reported), stay.
            assertTrue(rssAfter <= (blocks + 8 + 8) * PageSize.BYTES, "mem_map still holds " + (rssAfter / KIB) + " KiB");
            for (long pfn : huge) {
                long flags = map.flagsAcquire(pfn);
                assertEquals(MemMap.withOrder(MemMap.PG_BUDDY, ORDER) | MemMap.PG_REPORTED | MemMap.PG_ZEROED
                        | MemMap.PG_MAP_REPORTED, flags, "head of " + pfn);
                for (long f = pfn + 64; f < pfn + NR; f++) {
                    assertEquals(0, map.refcountVolatile(f), "a given-back tail reads as zeros: pfn " + f);
                }
            }

            // Handed out again whole: every tail as a fresh huge frame's, and the accounting back.
            huge.clear();
            for (int i = 0; i < blocks; i++) {
                long pfn = frames.huge().alloc(false);
                assertTrue(pfn != NO_FRAME);
                assertEquals(ALLOCATED_HUGE, map.flagsAcquire(pfn));
                for (long f = pfn + 1; f < pfn + NR; f++) {
                    assertFresh(map, f, 0, 1);
                }
                huge.add(pfn);
            }
            assertEquals(0, frames.memMapBytesGivenBack());
            assertEquals(structBefore, memory.structPageBytes(), "allocated again, the blocks count whole");
            for (long pfn : huge) {
                frames.huge().freeUnused(pfn);
            }
            await(() -> frames.memMapBytesGivenBack() >= blocks * BACK_PER_BLOCK, "reported again");

            // Handed out again frame by frame: every frame of memory, each as fresh, each usable.
            List<Long> all = new ArrayList<>();
            long pfn;
            while ((pfn = frames.allocFrame()) != NO_FRAME) {
                assertFresh(map, pfn, ALLOCATED_ORDER0, 1);
                assertTrue(map.casTag(pfn, 0, 7));
                memory.zone().frameSegment(pfn, 0).set(ValueLayout.JAVA_LONG, 0, pfn);
                all.add(pfn);
            }
            assertEquals(memory.frameCount() - 1, all.size(), "every frame but the zero page");
            assertEquals(0, frames.memMapBytesGivenBack());
            for (long p : all) {
                assertEquals(p, memory.zone().frameSegment(p, 0).get(ValueLayout.JAVA_LONG, 0));
                assertTrue(map.casTag(p, 7, 0));
                frames.freeFrame(p);
            }
            frames.drainAllCaches();
            assertEquals(memory.frameCount() - 1, memory.freeFrameCount());
            long reportable = memory.frameCount() / NR - 1;
            await(() -> frames.memMapBytesGivenBack() == reportable * BACK_PER_BLOCK,
                    "every block but the zero page's is reported with its records (" + frames.memMapBytesGivenBack() + ")");
            assertEquals(reportable, mapHeads(map, memory.onlineFrameCount()));
        }
    }

    @Test
    void shouldGiveNoStructPageBackWithoutReporting() throws InterruptedException {
        try (PhysicalMemory memory = PhysicalMemory.builder().bytes(16 * MIB).reporting(false).build();
                PhysicalMemory committed = PhysicalMemory.builder().bytes(16 * MIB).commitUpFront(true).build()) {
            for (PhysicalMemory m : List.of(memory, committed)) {
                FrameAllocator frames = m.zone().frames();
                List<Long> huge = new ArrayList<>();
                long pfn;
                while ((pfn = frames.huge().alloc(false)) != NO_FRAME) {
                    huge.add(pfn);
                }
                long before = m.structPageBytes();
                for (long p : huge) {
                    frames.huge().freeUnused(p);
                }
                Thread.sleep(50);
                assertEquals(before, m.structPageBytes());
                assertEquals(0, frames.memMapBytesGivenBack());
                assertEquals(0, mapHeads(m.zone().memMap(), m.onlineFrameCount()));
                assertEquals(m.frameCount() << MemMap.RECORD_SHIFT, m.structPageBytes(), "every block was online");
            }
        }
    }

    /** A bare buddy of {@code blocks} free, dirty 2 MiB blocks over a heap mem_map whose tails hold stale counts. */
    private static BuddyAllocator dirtyBuddy(MemMap map, int blocks) {
        BuddyAllocator buddy = new BuddyAllocator(map, (long) blocks * NR, false);
        long[] got = new long[blocks];
        for (int b = 0; b < blocks; b++) {
            got[b] = buddy.alloc(ORDER);
            for (long f = got[b] + 1; f < got[b] + NR; f++) {
                map.setRefcountRelease(f, 1); // a stale 1, as order-0 frames drained from a cache leave it
            }
        }
        for (long pfn : got) {
            map.setFlagsRelease(pfn, 0);
            buddy.free(pfn, ORDER);
        }
        return buddy;
    }

    @Test
    void shouldKeepTheRecordsAndTheAccountingWhenTheRecordsCallFails() {
        int blocks = 4;
        MemMap map = new MemMap(MemorySegment.ofArray(new long[blocks * NR * 8]), (long) blocks * NR);
        BuddyAllocator buddy = dirtyBuddy(map, blocks);
        List<Long> calls = new ArrayList<>();
        AtomicReference<String> wrong = new AtomicReference<>();
        FrameAllocator.Discarder records = (offset, length) -> {
            long head = (offset & -MemMap.BLOCK_RECORD_BYTES) >>> MemMap.RECORD_SHIFT;
            if (map.flagsAcquire(head) != MemMap.PG_ISOLATED) {
                wrong.set("records of block " + head + " given back while it is not isolated");
            }
            if (offset != MemMap.recordOffset(head) + PageSize.BYTES || length != 7 * PageSize.BYTES) {
                wrong.set("range " + offset + "+" + length + " for block " + head);
            }
            calls.add(head);
            if (calls.size() == 2) {
                return 12; // ENOMEM: refused
            }
            map.segment().asSlice(offset, length).fill((byte) 0); // what MADV_DONTNEED leaves
            return 0;
        };
        PageReporter reporter = new PageReporter(buddy, (offset, length) -> 0, records, true, 0, new FailPoints());
        assertEquals(blocks, reporter.pass());
        assertNull(wrong.get());
        assertEquals(blocks, calls.size());
        assertEquals(1, reporter.failedReports());
        assertEquals(blocks, reporter.reportedBlocks(), "a failed records call leaves the block reported");
        assertEquals((blocks - 1) * 7L, buddy.memMapPagesGivenBack());
        long refused = calls.get(1);
        assertEquals(0, map.flagsAcquire(refused) & MemMap.PG_MAP_REPORTED);
        assertTrue((map.flagsAcquire(refused) & MemMap.PG_REPORTED) != 0);
        for (long f = refused + 1; f < refused + NR; f++) {
            assertEquals(1, map.refcountVolatile(f), "the refused block's records are untouched");
        }
        for (long head : calls) {
            if (head != refused) {
                assertTrue((map.flagsAcquire(head) & MemMap.PG_MAP_REPORTED) != 0);
                assertEquals(1, map.refcountVolatile(head + 63), "the head's host page stays");
                assertEquals(0, map.refcountVolatile(head + 64), "the next page went back");
            }
        }
        // Allocated again, each block counts whole, whatever its records went through.
        for (int b = 0; b < blocks; b++) {
            assertTrue(buddy.alloc(ORDER) != BuddyAllocator.NO_FRAME);
        }
        assertEquals(0, buddy.memMapPagesGivenBack());
        assertEquals(BuddyAllocator.NO_FRAME, buddy.alloc(0));
    }

    @Test
    void shouldStopCallingForRecordsOnceTheHostRefusesTheRangeItself() {
        int blocks = 3;
        MemMap map = new MemMap(MemorySegment.ofArray(new long[blocks * NR * 8]), (long) blocks * NR);
        BuddyAllocator buddy = dirtyBuddy(map, blocks);
        int[] calls = new int[1];
        PageReporter reporter = new PageReporter(buddy, (offset, length) -> 0, (offset, length) -> {
            calls[0]++;
            return 22; // EINVAL: host pages larger than 4 KiB
        }, true, 0, new FailPoints());
        assertEquals(blocks, reporter.pass());
        assertEquals(1, calls[0]);
        assertEquals(0, reporter.failedReports(), "a host that cannot take 4 KiB ranges is no failed report");
        assertEquals(blocks, reporter.reportedBlocks());
        assertEquals(0, buddy.memMapPagesGivenBack());
    }

    /**
     * Threads allocate and free order-0 frames and huge frames while the reporter, with delay 0,
     * reports every block that comes free, records and all. Every frame handed out must look
     * fresh, every claim must succeed, and at the end every frame is free with no tag left.
     */
    @Test
    @Timeout(120)
    void shouldHandOutFreshFramesWhileTheReporterGivesRecordsBack() throws InterruptedException {
        int threads = 2;
        int ops = 40_000;
        try (PhysicalMemory memory = PhysicalMemory.builder().bytes(16 * MIB).frameCache(8, 32)
                .reportFreeAfter(Duration.ZERO).build()) {
            FrameAllocator frames = memory.zone().frames();
            MemMap map = memory.zone().memMap();
            AtomicReference<String> failure = new AtomicReference<>();
            CountDownLatch start = new CountDownLatch(1);
            long[] hugeAllocated = new long[threads];
            List<Thread> workers = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int tag = t + 1;
                workers.add(new Thread(() -> {
                    try {
                        start.await();
                        hugeAllocated[tag - 1] = churn(frames, map, tag, new SplittableRandom(tag * 31L), ops, failure);
                    } catch (Throwable e) {
                        failure.compareAndSet(null, "thread " + tag + ": " + e);
                    }
                }, "churn-" + tag));
            }
            workers.forEach(Thread::start);
            start.countDown();
            long maxBack = 0;
            while (workers.stream().anyMatch(Thread::isAlive)) {
                long back = frames.memMapBytesGivenBack();
                long online = memory.onlineFrameCount();
                if (back < 0 || back > (online / NR) * BACK_PER_BLOCK) {
                    failure.compareAndSet(null, back + " bytes given back with " + online + " frames online");
                }
                maxBack = Math.max(maxBack, back);
                Thread.sleep(1);
            }
            for (Thread w : workers) {
                w.join();
            }
            assertNull(failure.get());
            assertTrue(maxBack > 0, "records were given back while the threads ran");
            for (long n : hugeAllocated) {
                assertTrue(n > 0, "each thread got huge frames");
            }
            assertTrue(memory.reportedBlocks() > 7, "blocks were reported again and again: " + memory.reportedBlocks());
            assertEquals(0, memory.failedReports());

            frames.drainAllCaches();
            assertEquals(memory.frameCount() - 1, memory.freeFrameCount(), "no frame leaked");
            for (long pfn = 0; pfn < memory.frameCount(); pfn++) {
                assertEquals(0, map.tagVolatile(pfn), "tag of pfn " + pfn);
            }
            long reportable = memory.onlineFrameCount() / NR - 1;
            await(() -> mapHeads(map, memory.onlineFrameCount()) == reportable,
                    "every free block is reported with its records");
            assertEquals(reportable * BACK_PER_BLOCK, frames.memMapBytesGivenBack());
            long records = ((memory.onlineFrameCount() << MemMap.RECORD_SHIFT) + PageSize.BYTES - 1) & -PageSize.BYTES;
            assertEquals(records - reportable * BACK_PER_BLOCK, memory.structPageBytes());
        }
    }

    private record Held(long pfn, boolean huge) {
    }

    private static long churn(FrameAllocator frames, MemMap map, int tag, SplittableRandom random, int ops,
            AtomicReference<String> failure) {
        List<Held> held = new ArrayList<>();
        long huge = 0;
        for (int op = 0; op < ops && failure.get() == null; op++) {
            int dice = random.nextInt(100);
            if (dice < 45 && !held.isEmpty() || held.size() > 600) {
                release(frames, map, held.remove(random.nextInt(held.size())), tag, failure);
            } else if (dice < 48) {
                // Free everything now and then, so whole blocks come free and are reported under us.
                while (!held.isEmpty()) {
                    release(frames, map, held.removeLast(), tag, failure);
                }
                frames.drainCurrentThread();
            } else if (dice < 52) {
                long pfn = frames.huge().alloc(false);
                if (pfn != NO_FRAME) {
                    huge++;
                    check(map.flagsAcquire(pfn) == ALLOCATED_HUGE, failure, "huge head " + pfn);
                    for (long f = pfn; f < pfn + NR; f++) {
                        checkFresh(map, f, f == pfn ? ALLOCATED_HUGE : 0, tag, failure);
                    }
                    held.add(new Held(pfn, true));
                }
            } else {
                long pfn = frames.allocFrame();
                if (pfn != NO_FRAME) {
                    checkFresh(map, pfn, ALLOCATED_ORDER0, tag, failure);
                    held.add(new Held(pfn, false));
                }
            }
        }
        while (!held.isEmpty()) {
            release(frames, map, held.removeLast(), tag, failure);
        }
        frames.drainCurrentThread();
        return huge;
    }

    private static void checkFresh(MemMap map, long pfn, long flags, int tag, AtomicReference<String> failure) {
        check(map.flagsAcquire(pfn) == flags && map.refcountVolatile(pfn) == 1 && map.mapcountVolatile(pfn) == 0
                && map.typeAcquire(pfn) == MemMap.TYPE_NONE && map.ptlAcquire(pfn) == 0, failure,
                "pfn " + pfn + " handed out with flags 0x" + Long.toHexString(map.flagsAcquire(pfn)) + " refcount "
                + map.refcountVolatile(pfn) + " mapcount " + map.mapcountVolatile(pfn) + " type " + map.typeAcquire(pfn));
        check(map.casTag(pfn, 0, tag), failure, "pfn " + pfn + " handed to " + tag + " is held by " + map.tagVolatile(pfn));
    }

    private static void release(FrameAllocator frames, MemMap map, Held h, int tag, AtomicReference<String> failure) {
        int n = h.huge() ? NR : 1;
        for (long f = h.pfn(); f < h.pfn() + n; f++) {
            check(map.casTag(f, tag, 0), failure, "pfn " + f + " held by " + tag + " has tag " + map.tagVolatile(f));
        }
        if (h.huge()) {
            frames.huge().freeUnused(h.pfn());
        } else {
            frames.freeFrame(h.pfn());
        }
    }

    private static void check(boolean ok, AtomicReference<String> failure, String message) {
        if (!ok) {
            failure.compareAndSet(null, message);
            throw new AssertionError(message);
        }
    }
}
