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
 * Two actors take a write fault on the same never-touched page (racing on its PTE table too),
 * then each stores its tag into the frame its PTE names: both must see the same frame, and both
 * tags must be in the page that stays mapped.
 *
 * <p>r1: 1 if both actors saw the frame that is mapped at the end. r2: violated invariants, as
 * bits: 1 a fault did not return OK; 2 RSS is not one page; 4 the mapped frame lacks a tag (a
 * write went to a frame that was then dropped); 8 the frame's mapcount is not 1; 16 not exactly
 * one anonymous fault (a second page was installed).
 */
@JCStressTest
@Outcome(id = "1, 0", expect = Expect.ACCEPTABLE, desc = "Both faults resolved to the one frame that stays mapped.")
@Outcome(expect = Expect.FORBIDDEN, desc = "Two frames for one page, a lost write, or broken accounting.")
@State
public class SameFrameFault {
    private static final long TAG1 = 0x1111_0000_0000_0001L;
    private static final long TAG2 = 0x2222_0000_0000_0002L;
    private static final MemorySegment REGION = StressMemory.MEMORY.zone().region();

    private final PageTableProbe p = PageTableProbe.create(StressMemory.MEMORY, StressMemory.SPLIT);
    private final PageTableProbe.Actor a1 = p.actor();
    private final PageTableProbe.Actor a2 = p.actor();
    private int rc1;
    private int rc2;
    private long pfn1;
    private long pfn2;

    /** Faults, then tags the frame its PTE names; returns the pfn, or -code if the fault failed. */
    private long faultAndTag(PageTableProbe.Actor a, long offset, long tag) {
        int rc = a.writeFault(offset);
        if (rc != PageTableProbe.ok()) {
            return -rc;
        }
        long pfn = p.mappedPfn(offset);
        REGION.set(ValueLayout.JAVA_LONG, (pfn << 12) + offset, tag);
        return pfn;
    }

    /** First writer. */
    @Actor
    public void actor1() {
        long r = faultAndTag(a1, 0, TAG1);
        rc1 = r < 0 ? (int) -r : 0;
        pfn1 = r;
    }

    /** Second writer. */
    @Actor
    public void actor2() {
        long r = faultAndTag(a2, 8, TAG2);
        rc2 = r < 0 ? (int) -r : 0;
        pfn2 = r;
    }

    /** Checks the state's address space, then unmaps the page and frees everything. */
    @Arbiter
    public void arbiter(II_Result r) {
        long pfn = p.mappedPfn(0);
        r.r1 = pfn >= 0 && pfn1 == pfn && pfn2 == pfn ? 1 : 0;
        int bad = 0;
        if (rc1 != 0 || rc2 != 0) {
            bad |= 1;
        }
        if (p.rssPages() != 1) {
            bad |= 2;
        }
        if (pfn < 0 || REGION.get(ValueLayout.JAVA_LONG, pfn << 12) != TAG1
                || REGION.get(ValueLayout.JAVA_LONG, (pfn << 12) + 8) != TAG2) {
            bad |= 4;
        }
        if (pfn < 0 || p.mapcount(pfn) != 1) {
            bad |= 8;
        }
        if (p.anonFaults() != 1) {
            bad |= 16;
        }
        r.r2 = bad;
        p.close();
    }
}
