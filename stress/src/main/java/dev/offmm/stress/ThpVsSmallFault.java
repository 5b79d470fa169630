package dev.offmm.stress;

import dev.offmm.core.support.PageTableProbe;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A THP write fault and a 4 KiB write fault race on one empty 2 MiB range: both take the PMD lock
 * and recheck the entry, so exactly one kind wins and the other retries into the winner's
 * mapping. The loser frees what it allocated (a 2 MiB frame and the table it would have
 * deposited, or the PTE table); the probe's frame count shows it.
 *
 * <p>r1: 1 a huge page won, 2 a PTE table won, 3 no 2 MiB frame was free (fallback). r2: violated
 * invariants, as bits: 1 a fault did not return OK; 2 RSS is not 512 (huge) or 2 (the two pages);
 * 4 a tag is missing from the mapped memory; 8 the frames held are not exactly the winner's.
 */
@JCStressTest
@Outcome(id = "1, 0", expect = Expect.ACCEPTABLE, desc = "The THP fault won; the 4 KiB fault wrote into the huge page.")
@Outcome(id = "2, 0", expect = Expect.ACCEPTABLE, desc = "The 4 KiB fault's PTE table won; the THP fault mapped a 4 KiB page.")
@Outcome(id = "3, 0", expect = Expect.ACCEPTABLE_INTERESTING, desc = "No 2 MiB frame was free: both mapped 4 KiB pages.")
@Outcome(expect = Expect.FORBIDDEN, desc = "Both kinds, a lost write, or a leaked frame or table.")
@State
public class ThpVsSmallFault {
    private static final long TAG1 = 0x1111_0000_0000_0001L;
    private static final long TAG2 = 0x2222_0000_0000_0002L;
    private static final long PAGE = 4096;
    /** PGD, PUD and PMD tables of the probe. */
    private static final long BASE_FRAMES = 3;
    private static final MemorySegment REGION = StressMemory.HUGE_MEMORY.zone().region();

    private final PageTableProbe p = PageTableProbe.create(StressMemory.HUGE_MEMORY, StressMemory.SPLIT);
    private final PageTableProbe.Actor a1 = p.actor();
    private final PageTableProbe.Actor a2 = p.actor();
    private int rc1;
    private int rc2;

    /** The THP fault, then its tag at page 0. */
    @Actor
    public void thp() {
        rc1 = a1.thpWriteFault(0);
    }

    /** The 4 KiB fault, then its tag at page 1. */
    @Actor
    public void small() {
        rc2 = a2.writeFault(PAGE);
    }

    private long frameOf(long offset) {
        long huge = p.hugePfn();
        return huge >= 0 ? huge + offset / PAGE : p.mappedPfn(offset);
    }

    /** Tags both pages through whatever maps them, checks, then unmaps and frees everything. */
    @Arbiter
    public void arbiter(II_Result r) {
        boolean huge = p.hugePfn() >= 0;
        r.r1 = huge ? 1 : p.thpFallbacks() > 0 ? 3 : 2;
        int bad = rc1 != 0 || rc2 != 0 ? 1 : 0;
        long f0 = frameOf(0);
        long f1 = frameOf(PAGE);
        if (f0 < 0 || f1 < 0) {
            bad |= 4;
        } else {
            REGION.set(ValueLayout.JAVA_LONG, f0 << 12, TAG1);
            REGION.set(ValueLayout.JAVA_LONG, (f1 << 12) + 8, TAG2);
            if (REGION.get(ValueLayout.JAVA_LONG, frameOf(0) << 12) != TAG1
                    || REGION.get(ValueLayout.JAVA_LONG, (frameOf(PAGE) << 12) + 8) != TAG2) {
                bad |= 4;
            }
        }
        if (p.rssPages() != (huge ? 512 : 2)) {
            bad |= 2;
        }
        // Huge: 512 frames and the deposited table; small: two pages and one PTE table.
        if (p.framesHeld() != BASE_FRAMES + (huge ? 513 : 3) || p.hugePages() != (huge ? 1 : 0)) {
            bad |= 8;
        }
        r.r2 = bad;
        p.close();
    }
}
