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
 * Free page reporting racing the allocation of the same free 2 MiB block. The reporter takes the
 * block off its list under the zone lock before it calls the host, and puts it back after; an
 * allocation that finds only isolated blocks waits for them.
 *
 * <p>r1: blocks the pass reported (0 or 1). r2: 1 if the allocation got the block. r3: 1 if the
 * host was asked to discard the block while it was not isolated. Forbidden: the allocation
 * failing (the block was free all along), and any host call on a block that is not isolated
 * ("reported and handed out": the host would drop the bytes of memory in use).
 * {@link ReportingVsAllocControl} reports without isolating and must show r3 = 1.
 */
@JCStressTest
@Outcome(id = {"1, 1, 0", "0, 1, 0"}, expect = Expect.ACCEPTABLE,
        desc = "Reported then handed out (zero, recommitted by the host), or handed out before the pass saw it.")
@Outcome(id = ".*, 0, .*", expect = Expect.FORBIDDEN, desc = "The allocation failed although the block was free.")
@Outcome(id = ".*, .*, 1", expect = Expect.FORBIDDEN, desc = "The host discarded a block that was not isolated.")
@State
public class ReportingVsAlloc {
    private final ReportingProbe p = new ReportingProbe();

    /** One reporting pass at delay 0. */
    @Actor
    public void reporter(III_Result r) {
        r.r1 = p.reportPass();
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
