package dev.offmm.stress;

import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * The control: {@link PtLockMutexInline} against a deliberately broken lock word, one that tests
 * for 0 and then stores its token instead of compare-and-setting it. Its "0, 0" outcome (both
 * actors inside) is the one the real lock tests forbid; here it is EXPECTED, and marked
 * ACCEPTABLE_INTERESTING so that the run passes while the report shows the detector catching it.
 * If a run of this test ever shows no "0, 0", the harness did not exercise the race at all and the
 * real tests' silence means nothing.
 */
@JCStressTest
@Outcome(id = {"0, 1", "1, 0"}, expect = Expect.ACCEPTABLE, desc = "The broken lock happened not to be raced.")
@Outcome(id = "0, 0", expect = Expect.ACCEPTABLE_INTERESTING,
        desc = "EXPECTED for this broken lock: both inside at once. The detector works (the real locks forbid this).")
@Outcome(expect = Expect.FORBIDDEN, desc = "Any other value: the counter was corrupted beyond a lost update.")
@State
public class BrokenLockControl {
    private static final VarHandle WORD = ValueLayout.JAVA_LONG.varHandle().withInvokeExactBehavior();
    private static final int WORDS = 256;
    private static final MemorySegment LOCKS = Arena.global().allocate(WORDS * 64L, 64);
    private static int next;

    private final long offset;
    private int counter;

    /** Takes a lock word of the pool. */
    public BrokenLockControl() {
        synchronized (BrokenLockControl.class) {
            offset = (next++ & (WORDS - 1)) * 64L;
        }
    }

    /** Broken on purpose: test, then set, with a window between them. */
    private void brokenLock() {
        while ((long) WORD.getVolatile(LOCKS, offset) != 0L) {
            Thread.onSpinWait();
        }
        WORD.setVolatile(LOCKS, offset, 1L);
    }

    private void unlock() {
        WORD.setRelease(LOCKS, offset, 0L);
    }

    /** First incrementer. */
    @Actor
    public void actor1(II_Result r) {
        brokenLock();
        int v = counter;
        counter = v + 1;
        unlock();
        r.r1 = v;
    }

    /** Second incrementer. */
    @Actor
    public void actor2(II_Result r) {
        brokenLock();
        int v = counter;
        counter = v + 1;
        unlock();
        r.r2 = v;
    }
}
