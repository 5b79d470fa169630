package dev.offmm.stress;

import dev.offmm.core.support.GraceProbe;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

/**
 * The control of {@link QuiescentOrdering}: the reader's first access after quiescing without its
 * fence (a context that forgot {@code fenceNextEnter}). Without it the store and the load may be
 * reordered, so "0, 0" is EXPECTED here; the run fails if it is never seen.
 */
@JCStressTest
@Outcome(id = {"0, 1", "1, 1", "1, 0"}, expect = Expect.ACCEPTABLE, desc = "The race happened not to show.")
@Outcome(id = "0, 0", expect = Expect.ACCEPTABLE_INTERESTING,
        desc = "EXPECTED without the reader's fence: the updater freed under an access at the old generation.")
@State
public class QuiescentOrderingControl {
    private final GraceProbe p = new GraceProbe(true);

    /** The first access after quiescing, without the fence. */
    @Actor
    public void reader(II_Result r) {
        r.r1 = (int) p.brokenReaderEnter();
    }

    /** Bumps the generation, fences, reads the slot. */
    @Actor
    public void updater(II_Result r) {
        r.r2 = GraceProbe.idle(p.updaterScanWithoutBarrier()) ? 0 : 1;
    }
}
