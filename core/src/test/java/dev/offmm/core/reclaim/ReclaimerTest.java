package dev.offmm.core.reclaim;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The grace-period rules of {@link Reclaimer}, one participant state at a time. */
class ReclaimerTest {
    /** A batch that counts its releases. */
    private static final class Counting implements Reclaimer.Batch {
        final AtomicInteger released = new AtomicInteger();

        @Override
        public int frames() {
            return 3;
        }

        @Override
        public void release() {
            released.incrementAndGet();
        }
    }

    /** Runs {@code body} on a new thread that registers a slot, and keeps it alive until {@code end}. */
    private static Thread participant(Reclaimer r, EpochSlot[] out, CountDownLatch ready, CountDownLatch end, long enterAt) {
        Thread t = new Thread(() -> {
            EpochSlot s = r.register();
            if (enterAt != EpochSlot.IDLE) {
                s.enterOpaque(enterAt);
            }
            out[0] = s;
            ready.countDown();
            try {
                end.await();
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
            s.exitRelease();
        }, "participant");
        t.start();
        return t;
    }

    @Test
    void shouldReleaseAtOnceWhenNoContextIsInsideAnAccess() throws InterruptedException {
        Reclaimer r = new Reclaimer();
        EpochSlot[] slot = new EpochSlot[1];
        CountDownLatch ready = new CountDownLatch(1);
        CountDownLatch end = new CountDownLatch(1);
        Thread t = participant(r, slot, ready, end, EpochSlot.IDLE);
        ready.await();
        Counting b = new Counting();
        r.retire(5, b);
        assertEquals(1, b.released.get(), "a registered context outside any access holds nothing back");
        assertEquals(0, r.pendingFrames());
        end.countDown();
        t.join();
    }

    @Test
    void shouldHoldABatchWhileAnAccessThatBeganBeforeItRunsAndNameItsThread() throws InterruptedException {
        Reclaimer r = new Reclaimer();
        EpochSlot[] slot = new EpochSlot[1];
        CountDownLatch ready = new CountDownLatch(1);
        CountDownLatch end = new CountDownLatch(1);
        Thread t = participant(r, slot, ready, end, 4);
        ready.await();
        Counting older = new Counting();
        r.retire(4, older);
        assertEquals(1, older.released.get(), "an access that validated against generation 4 does not hold batch 4");
        Counting b = new Counting();
        r.retire(5, b);
        assertEquals(0, b.released.get(), "an access that began at generation 4 holds batch 5");
        assertEquals(3, r.pendingFrames());
        assertEquals(List.of("'participant'"), r.holders());
        assertFalse(r.awaitQuiescent(1_000_000), "still held");
        end.countDown();
        t.join();
        assertTrue(r.awaitQuiescent(1_000_000_000L));
        assertEquals(1, b.released.get(), "released once the access ended");
    }

    @Test
    void shouldTreatAThreadThatDiedInsideAnAccessAsHoldingNothingAndReuseItsSlot() throws InterruptedException {
        Reclaimer r = new Reclaimer();
        EpochSlot[] slot = new EpochSlot[1];
        Thread t = new Thread(() -> {
            slot[0] = r.register();
            slot[0].enterOpaque(1);
        });
        t.start();
        t.join();
        Counting b = new Counting();
        r.retire(2, b);
        assertEquals(1, b.released.get(), "a dead thread accesses nothing");
        assertEquals(0, r.participants());
        EpochSlot mine = r.register();
        assertTrue(mine == slot[0], "the dead thread's slot serves the next registration");
        r.unregister(mine);
    }

    @Test
    void shouldKeepTheSlotArrayAsSmallAsTheLiveContextsAfterManyThreadsDied() throws InterruptedException {
        Reclaimer r = new Reclaimer();
        for (int i = 0; i < 2_000; i++) {
            Thread t = new Thread(r::register);
            t.start();
            t.join();
        }
        EpochSlot mine = r.register();
        assertEquals(1, r.participants());
        Counting b = new Counting();
        r.retire(1, b);
        assertEquals(1, b.released.get());
        assertTrue(r.slotCapacity() <= 8, "dead threads' slots were reused, not accumulated: " + r.slotCapacity());
        r.unregister(mine);
    }

    /**
     * A scan covers only the batches retired before it: a poller that saw every context idle and
     * is still releasing must not go on to release a batch retired meanwhile, while an access that
     * began after its scan may be using that batch's frames.
     */
    @Test
    void shouldNotReleaseABatchRetiredAfterTheScanThatIsBeingUsed() throws InterruptedException {
        Reclaimer r = new Reclaimer();
        EpochSlot[] slot = new EpochSlot[1];
        CountDownLatch ready = new CountDownLatch(1);
        CountDownLatch entered = new CountDownLatch(1);
        CountDownLatch end = new CountDownLatch(1);
        Thread reader = new Thread(() -> {
            slot[0] = r.register();
            ready.countDown();
            try {
                entered.await();
                slot[0].enterOpaque(5);
                end.await();
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
            slot[0].exitRelease();
        }, "reader");
        reader.start();
        ready.await();
        CountDownLatch inRelease = new CountDownLatch(1);
        CountDownLatch proceed = new CountDownLatch(1);
        Reclaimer.Batch slow = new Reclaimer.Batch() {
            @Override
            public int frames() {
                return 1;
            }

            @Override
            public void release() {
                inRelease.countDown();
                try {
                    proceed.await();
                } catch (InterruptedException e) {
                    throw new AssertionError(e);
                }
            }
        };
        Thread poller = new Thread(() -> r.retire(1, slow), "poller");
        poller.start();
        inRelease.await();
        entered.countDown();
        while (slot[0].activeVolatile() != 5) {
            Thread.onSpinWait();
        }
        Counting later = new Counting();
        r.retire(6, later);
        assertEquals(0, later.released.get(), "held by the access at generation 5");
        proceed.countDown();
        poller.join();
        assertEquals(0, later.released.get(), "the first poller's scan did not cover a batch retired after it");
        end.countDown();
        reader.join();
        r.poll();
        assertEquals(1, later.released.get());
    }

    @Test
    void shouldKeepCountingPendingFramesRightWhenAReleaseThrows() {
        Reclaimer r = new Reclaimer();
        Reclaimer.Batch failing = new Reclaimer.Batch() {
            @Override
            public int frames() {
                return 2;
            }

            @Override
            public void release() {
                throw new IllegalStateException("release failed");
            }
        };
        assertThrows(IllegalStateException.class, () -> r.retire(1, failing));
        assertEquals(0, r.pendingFrames(), "a release that threw does not leave its frames pending forever");
        assertEquals(2, r.releasedFrames());
    }

    /** Retires {@code b} at generation {@code gen} from a new thread that stays alive until {@code end}. */
    private static Thread retireFrom(Reclaimer r, long gen, Reclaimer.Batch b, CountDownLatch end) throws InterruptedException {
        CountDownLatch retired = new CountDownLatch(1);
        Thread t = new Thread(() -> {
            r.retire(gen, b);
            retired.countDown();
            try {
                end.await();
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        }, "retirer");
        t.start();
        retired.await();
        return t;
    }

    @Test
    void shouldLeaveAnotherThreadsBatchToItsRetirerUntilItIsOldThenReleaseIt() throws InterruptedException {
        Reclaimer r = new Reclaimer();
        EpochSlot[] slot = new EpochSlot[1];
        CountDownLatch ready = new CountDownLatch(1);
        CountDownLatch endHolder = new CountDownLatch(1);
        // A context inside an access of generation 1 holds back every batch of generation 2.
        Thread holder = participant(r, slot, ready, endHolder, 1);
        ready.await();
        Counting theirs = new Counting();
        CountDownLatch endRetirer = new CountDownLatch(1);
        Thread retirer = retireFrom(r, 2, theirs, endRetirer);
        assertEquals(0, theirs.released.get(), "released under an access that began before it");
        endHolder.countDown();
        holder.join();
        // Safe now, but this thread did not retire it: its own polls leave it to the retirer.
        for (int i = 0; i < Reclaimer.FOREIGN_AFTER_RETIRES - 1; i++) {
            r.retire(3, new Counting());
        }
        assertEquals(0, theirs.released.get(), "a live retirer's batch was released by another thread's poll");
        r.retire(3, new Counting());
        assertEquals(1, theirs.released.get(), "an old batch of a live retirer is never released by others");
        endRetirer.countDown();
        retirer.join();
        assertEquals(0, r.pendingFrames());
    }

    @Test
    void shouldReleaseEveryoneElsesSafeBatchesOnAnExplicitPollAndADeadRetirersOnAny() throws InterruptedException {
        Reclaimer r = new Reclaimer();
        EpochSlot[] slot = new EpochSlot[1];
        CountDownLatch ready = new CountDownLatch(1);
        CountDownLatch endHolder = new CountDownLatch(1);
        Thread holder = participant(r, slot, ready, endHolder, 1);
        ready.await();
        Counting alive = new Counting();
        Counting dead = new Counting();
        CountDownLatch endAlive = new CountDownLatch(1);
        Thread aliveRetirer = retireFrom(r, 2, alive, endAlive);
        Thread deadRetirer = retireFrom(r, 2, dead, new CountDownLatch(0));
        deadRetirer.join();
        endHolder.countDown();
        holder.join();
        r.retire(3, new Counting());
        assertEquals(1, dead.released.get(), "a dead retirer's batch waits for a retirer that never comes");
        assertEquals(0, alive.released.get());
        r.poll();
        assertEquals(1, alive.released.get(), "poll() (pressure, close) releases whatever is safe, whoever retired it");
        assertEquals(0, r.pendingFrames());
        endAlive.countDown();
        aliveRetirer.join();
    }

    /** A batch of {@code n} frames that counts its releases. */
    private static final class Sized implements Reclaimer.Batch {
        final int n;
        int released;

        Sized(int n) {
            this.n = n;
        }

        @Override
        public int frames() {
            return n;
        }

        @Override
        public void release() {
            released++;
        }
    }

    @Test
    void shouldBatchSmallRetiresWhileBarriersAreRecentAndReleaseThemOnceTheyAddUpOrAreCovered() throws Exception {
        long[] now = {1_000_000_000L};
        Reclaimer r = new Reclaimer(() -> now[0]);
        EpochSlot[] slot = new EpochSlot[1];
        CountDownLatch ready = new CountDownLatch(1);
        CountDownLatch end = new CountDownLatch(1);
        // An idle context of another thread: every grace period needs the process-wide barrier.
        Thread idle = participant(r, slot, ready, end, EpochSlot.IDLE);
        ready.await();
        Sized first = new Sized(1);
        r.retire(1, first);
        assertEquals(1, first.released, "no barrier for a while: a rare unmap is released at once");
        // Within the interval, small retires wait for a barrier to cover them.
        Sized[] small = new Sized[Reclaimer.BARRIER_AFTER_FRAMES / 16];
        for (int i = 0; i < small.length - 1; i++) {
            small[i] = new Sized(16);
            r.retire(2 + i, small[i]);
        }
        assertEquals(0, small[0].released, "a small retire paid for its own barrier right after another");
        assertEquals((small.length - 1) * 16L, r.pendingFrames());
        // The one that makes them add up to BARRIER_AFTER_FRAMES issues the barrier for all.
        small[small.length - 1] = new Sized(16);
        r.retire(1 + small.length, small[small.length - 1]);
        for (Sized b : small) {
            assertEquals(1, b.released, "batched retires not released by the barrier that covers them");
        }
        // Covered by another thread's barrier: a later small retire releases the earlier one free.
        Sized mine = new Sized(1);
        r.retire(100, mine);
        assertEquals(0, mine.released);
        Thread big = new Thread(() -> r.retire(101, new Sized(Reclaimer.BARRIER_AFTER_FRAMES)));
        big.start();
        big.join();
        r.retire(102, new Sized(1));
        assertEquals(1, mine.released, "a batch another thread's barrier covers still waits for a barrier");
        // Time passing is enough on its own.
        now[0] += Reclaimer.BARRIER_INTERVAL_NANOS;
        Sized late = new Sized(1);
        r.retire(103, late);
        assertEquals(1, late.released, "no barrier for an interval, yet a small retire waited");
        assertEquals(0, r.pendingFrames());
        end.countDown();
        idle.join();
    }
}
