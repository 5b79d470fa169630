package dev.offmm.offheap.lock;

import dev.offmm.offheap.LockClass;
import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.PhysicalMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The page-table lock life cycle, one spec run against both lock modes (inline and debug). */
class PtLocksTest {
    private PhysicalMemory memory;
    private long table;

    @BeforeEach
    void create() {
        memory = PhysicalMemory.create(4L << 20);
        table = memory.zone().allocFrame();
        memory.zone().memMap().setTypeRelease(table, MemMap.TYPE_PMD_TABLE);
    }

    @AfterEach
    void close() {
        memory.close();
    }

    private static boolean tryLockFromAnotherThread(PtLocks locks, long handle) throws ExecutionException, InterruptedException {
        return CompletableFuture.supplyAsync(() -> {
            boolean taken = locks.tryLock(handle);
            if (taken) {
                locks.unlock(handle);
            }
            return taken;
        }).get();
    }

    @ParameterizedTest(name = "debug={0}")
    @ValueSource(booleans = {false, true})
    void shouldConstructAnUnlockedLockAndExcludeOtherThreadsWhileHeld(boolean debug) throws Exception {
        PtLocks locks = new PtLocks(memory.zone().memMap(), memory.zone().lockSlab(), debug);
        assertEquals(debug, locks.debug());
        assertTrue(locks.ptlockInit(table, LockClass.PMD));
        assertEquals(1, locks.liveLocks());
        long handle = locks.ptlockPtr(table);
        assertEquals(handle, locks.ptlockPtr(table), "the handle is stable");
        assertFalse(locks.isHeld(handle));

        assertFalse(locks.lock(handle), "an uncontended acquisition");
        assertTrue(locks.isHeld(handle));
        assertFalse(tryLockFromAnotherThread(locks, handle), "another thread cannot take a held lock");
        locks.unlock(handle);
        assertFalse(locks.isHeld(handle));
        assertTrue(tryLockFromAnotherThread(locks, handle), "another thread takes it once released");
        assertTrue(locks.tryLock(handle));
        locks.unlock(handle);

        locks.ptlockFree(table);
        assertEquals(0, locks.liveLocks());
    }

    @ParameterizedTest(name = "debug={0}")
    @ValueSource(booleans = {false, true})
    void shouldGiveEachTableItsOwnLock(boolean debug) throws Exception {
        PtLocks locks = new PtLocks(memory.zone().memMap(), memory.zone().lockSlab(), debug);
        long other = memory.zone().allocFrame();
        memory.zone().memMap().setTypeRelease(other, MemMap.TYPE_PTE_TABLE);
        assertTrue(locks.ptlockInit(table, LockClass.PMD));
        assertTrue(locks.ptlockInit(other, LockClass.PTE));
        long a = locks.ptlockPtr(table);
        long b = locks.ptlockPtr(other);
        assertNotEquals(a, b);
        locks.lock(a);
        assertTrue(tryLockFromAnotherThread(locks, b), "holding one table's lock does not block another's");
        locks.unlock(a);
        locks.ptlockFree(table);
        locks.ptlockFree(other);
        assertEquals(0, locks.liveLocks());
    }

    @ParameterizedTest(name = "debug={0}")
    @ValueSource(booleans = {false, true})
    void shouldRejectFreeingAHeldLock(boolean debug) {
        PtLocks locks = new PtLocks(memory.zone().memMap(), memory.zone().lockSlab(), debug);
        assertTrue(locks.ptlockInit(table, LockClass.PMD));
        long handle = locks.ptlockPtr(table);
        locks.lock(handle);
        long slabLocks = memory.zone().lockSlab().liveLocks();

        IllegalStateException e = assertThrows(IllegalStateException.class, () -> locks.ptlockFree(table));
        assertTrue(e.getMessage().contains("hold") || e.getMessage().contains("held"), e.getMessage());
        assertEquals(1, locks.liveLocks(), "the failed destructor changed nothing");
        assertEquals(slabLocks, memory.zone().lockSlab().liveLocks());
        assertEquals(handle, locks.ptlockPtr(table));
        assertTrue(locks.isHeld(handle));

        locks.unlock(handle);
        locks.ptlockFree(table);
        assertEquals(0, locks.liveLocks());
        assertEquals(0, memory.zone().lockSlab().liveLocks());
    }

    @ParameterizedTest(name = "debug={0}")
    @ValueSource(booleans = {false, true})
    void shouldReportContentionToTheWaiter(boolean debug) throws Exception {
        PtLocks locks = new PtLocks(memory.zone().memMap(), memory.zone().lockSlab(), debug);
        assertTrue(locks.ptlockInit(table, LockClass.PMD));
        long handle = locks.ptlockPtr(table);
        locks.lock(handle);
        CompletableFuture<Boolean> waiter = new CompletableFuture<>();
        Thread t = new Thread(() -> {
            boolean contended = locks.lock(handle);
            locks.unlock(handle);
            waiter.complete(contended);
        });
        t.start();
        LockTesting.awaitParked(t);
        locks.unlock(handle);
        assertTrue(waiter.get(), "the waiter's acquisition is reported contended");
        t.join();
        locks.ptlockFree(table);
    }
}
