package dev.offmm.stress;

import dev.offmm.core.support.GraceProbe;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

/**
 * The ordering the grace periods rely on, as offmm runs it: a reader publishes that it entered
 * an access at generation 0 (opaque store, kept before its next load by C2's CPU-order barriers)
 * and then loads the generation; an updater bumps the generation and then scans the readers
 * after {@code membarrier(PRIVATE_EXPEDITED)} (or, on a host without it, the reader fences).
 *
 * <p>r1: the generation the reader loaded (0 or 1). r2: 1 if the updater saw the reader in an
 * access, 0 if it saw it outside. "0, 0" would mean the updater freed what the reader is about to
 * use through a translation it validated at generation 0: forbidden. The same race without the
 * barrier is {@link GraceOrderingControl}, which must show it.
 */
@JCStressTest
@Outcome(id = {"0, 1", "1, 1", "1, 0"}, expect = Expect.ACCEPTABLE,
        desc = "The updater saw the access, or the reader saw the bump (and would drop its translations).")
@Outcome(id = "0, 0", expect = Expect.FORBIDDEN,
        desc = "The reader used generation 0 while the updater saw no access in progress.")
@State
public class GraceOrdering {
    private final GraceProbe p = new GraceProbe();

    /** Enters an access. */
    @Actor
    public void reader(II_Result r) {
        r.r1 = (int) p.readerEnter();
    }

    /** Bumps the generation, then scans. */
    @Actor
    public void updater(II_Result r) {
        r.r2 = GraceProbe.idle(p.updaterScan()) ? 0 : 1;
    }
}
