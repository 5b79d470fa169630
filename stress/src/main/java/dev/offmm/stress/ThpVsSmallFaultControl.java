package dev.offmm.stress;

import dev.offmm.core.support.PageTableProbe;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

/**
 * The control of {@link ThpVsSmallFault}: a THP fault that stores its huge entry under the PMD
 * lock without rechecking that the entry is still empty. When the 4 KiB fault's PTE table got
 * there first, the huge entry replaces it, and the table and its page are left allocated and
 * counted: "1, 1" (a huge page won, and the frames held are not just the winner's) is EXPECTED
 * here; the run fails if it is never seen. (Each time it is, a table and a page leak for the rest
 * of the forked VM, from a memory of its own.)
 *
 * <p>r1: 1 a huge page is mapped, 2 not. r2: 1 the frames held are not exactly the winner's.
 */
@JCStressTest
@Outcome(id = {"1, 0", "2, 0"}, expect = Expect.ACCEPTABLE, desc = "The race happened not to show.")
@Outcome(id = "1, 1", expect = Expect.ACCEPTABLE_INTERESTING,
        desc = "EXPECTED without the recheck: the huge entry replaced a PTE table, which leaked with its page.")
@Outcome(expect = Expect.ACCEPTABLE, desc = "Other interleavings.")
@State
public class ThpVsSmallFaultControl {
    private static final long PAGE = 4096;
    /** PGD, PUD and PMD tables of the probe. */
    private static final long BASE_FRAMES = 3;

    private final PageTableProbe p = PageTableProbe.create(StressMemory.CONTROL_MEMORY, StressMemory.SPLIT);
    private final PageTableProbe.Actor a1 = p.actor();
    private final PageTableProbe.Actor a2 = p.actor();

    /** The broken THP fault. */
    @Actor
    public void thp() {
        a1.brokenThpWriteFault();
    }

    /** The 4 KiB fault. */
    @Actor
    public void small() {
        a2.writeFault(PAGE);
    }

    /** Whether the winner holds exactly its frames, then unmaps what is reachable. */
    @Arbiter
    public void arbiter(II_Result r) {
        boolean huge = p.hugePfn() >= 0;
        r.r1 = huge ? 1 : 2;
        r.r2 = huge && p.framesHeld() != BASE_FRAMES + 513 ? 1 : 0;
        p.close();
    }
}
