package dev.offmm.offheap.lock;

import dev.offmm.offheap.LockClass;
import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.frame.FrameAllocator;
import dev.offmm.offheap.inject.FailSite;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Debug mode: allocated locks that know their holder, can fail to allocate, and never outlive their table. */
class DebugLockTest {
    private PhysicalMemory memory;
    private PtLocks locks;

    @BeforeEach
    void create() {
        memory = PhysicalMemory.create(4L << 20);
        locks = new PtLocks(memory.zone().memMap(), memory.zone().lockSlab(), true);
    }

    @AfterEach
    void close() {
        memory.close();
    }

    private long newTable() {
        long pfn = memory.zone().allocFrame();
        assertTrue(pfn != FrameAllocator.NO_FRAME);
        memory.zone().memMap().setTypeRelease(pfn, MemMap.TYPE_PTE_TABLE);
        return pfn;
    }

    private void destroyTable(long pfn) {
        locks.ptlockFree(pfn);
        memory.zone().memMap().setTypeRelease(pfn, MemMap.TYPE_NONE);
        memory.zone().freeFrame(pfn);
    }

    private static Throwable thrownByAnotherThread(Runnable action) throws ExecutionException, InterruptedException {
        return CompletableFuture.supplyAsync(() -> {
            try {
                action.run();
                return null;
            } catch (Throwable e) {
                return e;
            }
        }).get();
    }

    @Test
    void shouldRejectUnlockByAThreadThatDoesNotHoldTheLock() throws Exception {
        long table = newTable();
        assertTrue(locks.ptlockInit(table, LockClass.PTE));
        long handle = locks.ptlockPtr(table);
        locks.lock(handle);

        Throwable e = thrownByAnotherThread(() -> locks.unlock(handle));
        assertTrue(e instanceof IllegalMonitorStateException, String.valueOf(e));
        assertTrue(e.getMessage().contains("held by thread " + Thread.currentThread().threadId()), e.getMessage());
        assertTrue(locks.isHeld(handle), "the failed unlock left the lock with its holder");
        assertEquals(Thread.currentThread().threadId(), locks.info(handle).holder());

        locks.unlock(handle);
        IllegalMonitorStateException notLocked = assertThrows(IllegalMonitorStateException.class, () -> locks.unlock(handle));
        assertTrue(notLocked.getMessage().contains("not locked"), notLocked.getMessage());
        destroyTable(table);
    }

    @Test
    void shouldRejectARecursiveLockByTheHolder() {
        long table = newTable();
        assertTrue(locks.ptlockInit(table, LockClass.PTE));
        long handle = locks.ptlockPtr(table);
        locks.lock(handle);
        IllegalMonitorStateException e = assertThrows(IllegalMonitorStateException.class, () -> locks.lock(handle));
        assertTrue(e.getMessage().contains("already holds"), e.getMessage());
        assertTrue(locks.isHeld(handle));
        locks.unlock(handle);
        assertFalse(locks.isHeld(handle));
        locks.lock(handle);
        locks.unlock(handle);
        destroyTable(table);
    }

    @Test
    void shouldReportLockAllocationFailureFromTheFailPointWithoutLeaking() {
        long table = newTable();
        long used = memory.usedFrameCount();
        memory.zone().failPoints().failNth(FailSite.PTLOCK, 1);

        assertFalse(locks.ptlockInit(table, LockClass.PTE), "the constructor reports the failure");
        assertEquals(1, memory.zone().failPoints().injected(FailSite.PTLOCK));
        assertEquals(0, locks.liveLocks());
        assertEquals(0, memory.zone().lockSlab().liveLocks());
        assertEquals(used, memory.usedFrameCount());
        assertThrows(IllegalStateException.class, () -> locks.ptlockPtr(table), "the table has no lock");

        assertTrue(locks.ptlockInit(table, LockClass.PTE), "only the first call failed");
        assertEquals(1, locks.liveLocks());
        destroyTable(table);
    }

    @Test
    void shouldReportLockAllocationFailureWhenTheSlabCannotGrow() {
        long table = newTable();
        long used = memory.usedFrameCount();
        assertEquals(0, memory.zone().lockSlab().pages(), "the slab starts empty");
        memory.zone().failPoints().failAlways(FailSite.SLAB_PAGE);

        assertFalse(locks.ptlockInit(table, LockClass.PTE));
        assertFalse(locks.ptlockInit(table, LockClass.PTE));
        assertEquals(2, memory.zone().failPoints().injected(FailSite.SLAB_PAGE));
        assertEquals(0, memory.zone().lockSlab().pages());
        assertEquals(0, memory.zone().lockSlab().liveLocks());
        assertEquals(0, locks.liveLocks());
        assertEquals(used, memory.usedFrameCount(), "no slab page was taken");

        memory.zone().failPoints().disarm(FailSite.SLAB_PAGE);
        assertTrue(locks.ptlockInit(table, LockClass.PTE));
        destroyTable(table);
    }

    @Test
    void shouldReportLockAllocationFailureWhenFramesAreExhausted() {
        long table = newTable();
        List<Long> hog = new ArrayList<>();
        for (long pfn; (pfn = memory.zone().allocFrame()) != FrameAllocator.NO_FRAME;) {
            hog.add(pfn);
        }
        assertFalse(locks.ptlockInit(table, LockClass.PTE), "no frame for a slab page");
        assertEquals(0, locks.liveLocks());
        memory.zone().freeFrame(hog.removeLast());
        assertTrue(locks.ptlockInit(table, LockClass.PTE), "one free frame is enough for a slab page");
        hog.forEach(memory.zone()::freeFrame);
        destroyTable(table);
    }

    @Test
    void shouldNotLetADebugLockOutliveItsTable() {
        long used = memory.usedFrameCount();
        List<Long> tables = new ArrayList<>();
        for (int i = 0; i < 300; i++) {
            long table = newTable();
            assertTrue(locks.ptlockInit(table, i % 2 == 0 ? LockClass.PTE : LockClass.PMD));
            tables.add(table);
        }
        assertEquals(300, locks.liveLocks());
        assertEquals(300, memory.zone().lockSlab().liveLocks());
        assertEquals(5, memory.zone().lockSlab().pages(), "64 locks per slab page");
        assertEquals(used + 300 + 5, memory.usedFrameCount());

        for (long table : tables) {
            destroyTable(table);
        }
        assertEquals(0, locks.liveLocks());
        assertEquals(0, memory.zone().lockSlab().liveLocks());
        memory.zone().lockSlab().shrink();
        assertEquals(0, memory.zone().lockSlab().pages());
        assertEquals(used, memory.usedFrameCount(), "every slab page went back to the frame allocator");
    }

    @Test
    void shouldKeepAtMostOneEmptySlabPage() {
        List<Long> tables = new ArrayList<>();
        for (int i = 0; i < 4 * 64; i++) {
            long table = newTable();
            assertTrue(locks.ptlockInit(table, LockClass.PTE));
            tables.add(table);
        }
        assertEquals(4, memory.zone().lockSlab().pages());
        for (long table : tables) {
            destroyTable(table);
        }
        assertEquals(1, memory.zone().lockSlab().pages(), "one empty page is kept for reuse, the others are returned");

        // The accounting still holds after the kept page is reused and emptied again.
        for (int round = 0; round < 3; round++) {
            tables.clear();
            for (int i = 0; i < 2 * 64; i++) {
                long table = newTable();
                assertTrue(locks.ptlockInit(table, LockClass.PTE));
                tables.add(table);
            }
            assertEquals(2, memory.zone().lockSlab().pages());
            tables.forEach(this::destroyTable);
            assertEquals(1, memory.zone().lockSlab().pages(), "round " + round);
        }
    }

    @Test
    void shouldRejectFreeingADebugLockTwiceOrUsingItAfterFree() {
        long table = newTable();
        long keep = newTable();
        assertTrue(locks.ptlockInit(keep, LockClass.PTE)); // keeps the slab page alive
        assertTrue(locks.ptlockInit(table, LockClass.PTE));
        long handle = locks.ptlockPtr(table);
        locks.ptlockFree(table);

        assertThrows(IllegalStateException.class, () -> locks.ptlockFree(table), "destructor run twice");
        assertThrows(IllegalStateException.class, () -> locks.ptlockPtr(table), "no lock after the destructor");
        assertThrows(IllegalStateException.class, () -> memory.zone().lockSlab().free(handle), "record freed twice");
        assertThrows(IllegalStateException.class, () -> locks.info(handle));
        assertThrows(IllegalStateException.class, () -> locks.lock(handle), "locking a freed lock");
        assertThrows(IllegalStateException.class, () -> locks.tryLock(handle), "locking a freed lock");
        assertEquals(0, memory.zone().lockSlab().holder(handle), "the freed record was not written");
        assertEquals(1, memory.zone().lockSlab().liveLocks());

        memory.zone().memMap().setTypeRelease(table, MemMap.TYPE_NONE);
        memory.zone().freeFrame(table);
        destroyTable(keep);
    }

    @Test
    void shouldCountAcquisitionsAndContentions() throws Exception {
        long table = newTable();
        assertTrue(locks.ptlockInit(table, LockClass.PMD));
        long handle = locks.ptlockPtr(table);
        LockInfo fresh = locks.info(handle);
        assertEquals(new LockInfo(LockClass.PMD, 0, 0, 0, 0), fresh);

        for (int i = 0; i < 10; i++) {
            assertFalse(locks.lock(handle));
            locks.unlock(handle);
        }
        assertTrue(locks.tryLock(handle));
        locks.unlock(handle);
        LockInfo uncontended = locks.info(handle);
        assertEquals(11, uncontended.acquisitions());
        assertEquals(0, uncontended.contentions());

        locks.lock(handle);
        assertEquals(Thread.currentThread().threadId(), locks.info(handle).holder());
        CompletableFuture<Boolean> contended = new CompletableFuture<>();
        Thread waiter = new Thread(() -> {
            boolean c = locks.lock(handle);
            try {
                TimeUnit.MILLISECONDS.sleep(2);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            locks.unlock(handle);
            contended.complete(c);
        });
        waiter.start();
        LockTesting.awaitParked(waiter);
        locks.unlock(handle);
        assertTrue(contended.get());
        waiter.join();

        LockInfo after = locks.info(handle);
        assertEquals(LockClass.PMD, after.lockClass());
        assertEquals(0, after.holder());
        assertEquals(13, after.acquisitions());
        assertEquals(1, after.contentions());
        assertTrue(after.maxHoldNanos() >= TimeUnit.MILLISECONDS.toNanos(2), "the contended 2 ms hold was timed: " + after);
        destroyTable(table);
    }

    @Test
    void shouldHaveNoStatisticsInInlineMode() {
        PtLocks inline = new PtLocks(memory.zone().memMap(), memory.zone().lockSlab(), false);
        long table = newTable();
        assertTrue(inline.ptlockInit(table, LockClass.PTE));
        assertNull(inline.info(inline.ptlockPtr(table)));
        assertEquals(0, memory.zone().lockSlab().liveLocks(), "inline locks take nothing from the slab");
        inline.ptlockFree(table);
    }
}
