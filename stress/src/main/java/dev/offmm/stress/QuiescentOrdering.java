package dev.offmm.stress;

import dev.offmm.core.support.GraceProbe;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

/**
 * The barrier-free half of the grace periods: a context that published QUIESCENT (during a fault
 * or an mmap call) fences once after the next access's publication, so an updater that bumps,
 * fences and then reads QUIESCENT may free without {@code membarrier}. The reader enters at
 * generation 0 from QUIESCENT; the updater bumps and reads the slot after a plain fence.
 *
 * <p>r1: the generation the reader loaded (0 or 1). r2: 1 if the updater saw the access, 0 if it
 * saw QUIESCENT. "0, 0" would mean a free under an access validated at generation 0: forbidden.
 * {@link QuiescentOrderingControl} drops the reader's fence and must show it.
 */
@JCStressTest
@Outcome(id = {"0, 1", "1, 1", "1, 0"}, expect = Expect.ACCEPTABLE,
        desc = "The updater saw the access, or the reader saw the bump (and would drop its translations).")
@Outcome(id = "0, 0", expect = Expect.FORBIDDEN,
        desc = "The reader used generation 0 while the updater, without a barrier, saw it quiescent.")
@State
public class QuiescentOrdering {
    private final GraceProbe p = new GraceProbe(true);

    /** The first access after quiescing: publish, fence, load. */
    @Actor
    public void reader(II_Result r) {
        r.r1 = (int) p.readerEnterAfterQuiesce();
    }

    /** Bumps the generation, fences, reads the slot: no membarrier. */
    @Actor
    public void updater(II_Result r) {
        r.r2 = GraceProbe.idle(p.updaterScanWithoutBarrier()) ? 0 : 1;
    }
}
