package dev.offmm.stress;

import dev.offmm.offheap.frame.ReportingProbe;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.III_Result;

/**
 * The control of {@link ReportingVsAlloc}: a reporter that sees the block free and calls the host
 * without taking it off the list first. The allocation can take the block in between, so
 * "1, 1, 1" (a discard of memory in use) is EXPECTED here; the run fails if it is never seen.
 */
@JCStressTest
@Outcome(id = {"1, 1, 0", "0, 1, 0"}, expect = Expect.ACCEPTABLE, desc = "The race happened not to show.")
@Outcome(id = "1, 1, 1", expect = Expect.ACCEPTABLE_INTERESTING,
        desc = "EXPECTED without isolation: the host discarded the block after it was handed out.")
@Outcome(expect = Expect.ACCEPTABLE, desc = "Other interleavings.")
@State
public class ReportingVsAllocControl {
    private final ReportingProbe p = new ReportingProbe();

    /** Checks, then discards, without isolating. */
    @Actor
    public void reporter(III_Result r) {
        r.r1 = p.brokenReport();
    }

    /** Allocates a 2 MiB block. */
    @Actor
    public void allocator(III_Result r) {
        r.r2 = p.allocate();
    }

    /** Whether the host saw a block that was not isolated. */
    @Arbiter
    public void check(III_Result r) {
        r.r3 = p.misreported();
    }
}
