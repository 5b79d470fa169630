package dev.offmm.stress;

import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

/**
 * Mutual exclusion of an inline page-table lock (the ptl word of a table's struct page, a
 * test-and-test-and-set spinlock): two actors each read a counter under the lock and write it
 * back incremented. Each actor reports the value it read.
 */
@JCStressTest
@Outcome(id = {"0, 1", "1, 0"}, expect = Expect.ACCEPTABLE, desc = "One critical section after the other.")
@Outcome(id = "0, 0", expect = Expect.FORBIDDEN,
        desc = "Both inside at once (or the unlock did not publish the write): mutual exclusion broken.")
@Outcome(expect = Expect.FORBIDDEN, desc = "Any other value: the counter was corrupted.")
@State
public class PtLockMutexInline {
    private static final LockPool POOL = new LockPool(false);

    private final long lock = POOL.take();
    private int counter;

    /** First incrementer. */
    @Actor
    public void actor1(II_Result r) {
        POOL.locks.lock(lock);
        int v = counter;
        counter = v + 1;
        POOL.locks.unlock(lock);
        r.r1 = v;
    }

    /** Second incrementer. */
    @Actor
    public void actor2(II_Result r) {
        POOL.locks.lock(lock);
        int v = counter;
        counter = v + 1;
        POOL.locks.unlock(lock);
        r.r2 = v;
    }
}
