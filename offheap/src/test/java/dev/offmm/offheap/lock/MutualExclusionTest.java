package dev.offmm.offheap.lock;

import dev.offmm.offheap.LockClass;
import dev.offmm.offheap.host.Backoff;
import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.PhysicalMemory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Mutual exclusion of a table frame's page-table lock, in inline and debug mode, with as many
 * threads as cores and with 4x oversubscription. Forbidden outcome: a final count below
 * threads x iterations (an increment lost because two threads were inside at once). The
 * controls show the same check failing without the lock and with a broken lock.
 */
class MutualExclusionTest {
    private static final int CONTROL_ATTEMPTS = 20;

    @ParameterizedTest(name = "debug={0}, threads={1}, iterations={2}, tryLock={3}")
    @CsvSource({
        "false, 4, 1000000, false",
        "true,  4, 1000000, false",
        "false, 8,  250000, false",
        "true,  8,  250000, false",
        "false, 4,  500000, true",
        "true,  4,  500000, true",
    })
    @Timeout(60)
    void shouldNeverLetTwoThreadsIntoTheCriticalSection(boolean debug, int threads, int iterations, boolean useTryLock)
            throws InterruptedException {
        try (PhysicalMemory memory = PhysicalMemory.create(4L << 20)) {
            PtLocks locks = new PtLocks(memory.zone().memMap(), memory.zone().lockSlab(), debug);
            long table = memory.zone().allocFrame();
            memory.zone().memMap().setTypeRelease(table, MemMap.TYPE_PTE_TABLE);
            assertTrue(locks.ptlockInit(table, LockClass.PTE));
            long handle = locks.ptlockPtr(table);
            CounterHarness.Guard guard = new CounterHarness.Guard() {
                @Override
                public void lock() {
                    if (useTryLock) {
                        int attempt = 0;
                        while (!locks.tryLock(handle)) {
                            attempt = Backoff.idle(attempt);
                        }
                    } else {
                        locks.lock(handle);
                    }
                }

                @Override
                public void unlock() {
                    locks.unlock(handle);
                }
            };

            long count = CounterHarness.run(threads, iterations, guard, memory.zone().frameSegment(table, 0));

            assertEquals((long) threads * iterations, count, "increments under the lock");
            assertFalse(locks.isHeld(handle));
            if (debug) {
                assertEquals((long) threads * iterations, locks.info(handle).acquisitions());
            }
            locks.ptlockFree(table);
            memory.zone().memMap().setTypeRelease(table, MemMap.TYPE_NONE);
            memory.zone().freeFrame(table);
            assertEquals(0, locks.liveLocks());
        }
    }

    @Test
    @Timeout(60)
    void shouldLoseUpdatesWithoutTheLock() throws InterruptedException {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment word = arena.allocate(64, 64);
            assertTrue(losesAnUpdate(CounterHarness.UNGUARDED, word), "the unguarded counter lost no update in "
                    + CONTROL_ATTEMPTS + " attempts: the mutual-exclusion check could not catch a broken lock");
        }
    }

    @Test
    @Timeout(60)
    void shouldLoseUpdatesWithABrokenReadThenWriteLock() throws InterruptedException {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment word = arena.allocate(64, 64);
            MemorySegment lockWord = arena.allocate(64, 64);
            assertTrue(losesAnUpdate(new ReadThenWriteLock(lockWord), word), "the broken lock lost no update in "
                    + CONTROL_ATTEMPTS + " attempts: the mutual-exclusion check could not catch it");
        }
    }

    private static boolean losesAnUpdate(CounterHarness.Guard guard, MemorySegment word) throws InterruptedException {
        int threads = 4;
        int iterations = 200_000;
        for (int attempt = 0; attempt < CONTROL_ATTEMPTS; attempt++) {
            long count = CounterHarness.run(threads, iterations, guard, word);
            assertTrue(count <= (long) threads * iterations, "more increments than attempted: " + count);
            if (count < (long) threads * iterations) {
                return true;
            }
        }
        return false;
    }

    /**
     * A deliberately broken spinlock: it waits for the word to read 0, then stores its token with
     * a separate write instead of a CAS, so two threads can both see 0 and both enter.
     */
    private static final class ReadThenWriteLock implements CounterHarness.Guard {
        private static final VarHandle WORD = ValueLayout.JAVA_LONG.varHandle().withInvokeExactBehavior();
        private final MemorySegment lockWord;

        ReadThenWriteLock(MemorySegment lockWord) {
            this.lockWord = lockWord;
        }

        @Override
        public void lock() {
            while ((long) WORD.getAcquire(lockWord, 0L) != 0L) {
                Thread.onSpinWait();
            }
            Thread.onSpinWait(); // the window between the test and the set that a CAS would close
            WORD.setVolatile(lockWord, 0L, 1L);
        }

        @Override
        public void unlock() {
            WORD.setRelease(lockWord, 0L, 0L);
        }
    }

    @Test
    void shouldCountEveryIncrementOfASingleThreadWithoutALock() throws InterruptedException {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment word = arena.allocate(64, 64);
            assertEquals(50_000, CounterHarness.run(1, 50_000, CounterHarness.UNGUARDED, word), "one thread needs no lock");
            assertNotEquals(0, word.get(ValueLayout.JAVA_LONG, 0));
        }
    }
}
