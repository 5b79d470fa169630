package dev.offmm.stress;

import dev.offmm.core.support.GraceProbe;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

/**
 * The control of {@link GraceOrdering}: the same reader and updater without the barrier (no
 * {@code membarrier}, no reader fence). A store followed by a load of another word may be
 * reordered by the processor (x86's store buffer does it), so "0, 0" is EXPECTED here; the run
 * fails if it is never seen, since then it could not have caught a missing barrier either.
 */
@JCStressTest
@Outcome(id = {"0, 1", "1, 1", "1, 0"}, expect = Expect.ACCEPTABLE, desc = "The race happened not to show.")
@Outcome(id = "0, 0", expect = Expect.ACCEPTABLE_INTERESTING,
        desc = "EXPECTED without the barrier: the updater missed an access that used the old generation.")
@State
public class GraceOrderingControl {
    private final GraceProbe p = new GraceProbe();

    /** Enters an access, without a fence. */
    @Actor
    public void reader(II_Result r) {
        r.r1 = (int) p.brokenReaderEnter();
    }

    /** Bumps the generation, then reads the slot without the barrier. */
    @Actor
    public void updater(II_Result r) {
        r.r2 = GraceProbe.idle(p.brokenUpdaterScan()) ? 0 : 1;
    }
}
