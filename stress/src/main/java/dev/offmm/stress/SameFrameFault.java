package dev.offmm.stress;

import dev.offmm.core.Prot;
import dev.offmm.core.fault.FaultHandler;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PtlSlot;
import dev.offmm.core.pgtable.Pte;
import dev.offmm.core.vma.Vma;
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
    private static final MemorySegment REGION = StressMemory.MEMORY.region();

    private final TableFixture f = new TableFixture(StressMemory.SPLIT);
    private final FaultHandler faults = new FaultHandler(f.mm);
    private final Vma vma = new Vma(TableFixture.VA, TableFixture.VA + Entries.PMD_SIZE, Prot.READ | Prot.WRITE, 0);
    private final PtlSlot slot1 = new PtlSlot();
    private final PtlSlot slot2 = new PtlSlot();
    private int rc1;
    private int rc2;
    private long pfn1;
    private long pfn2;

    private long faultAndTag(PtlSlot slot, long offset, long tag) {
        if (!vma.tryReadLock()) {
            throw new IllegalStateException("vma write-locked");
        }
        try {
            int rc = faults.handleMmFault(vma, TableFixture.VA + offset, true, slot);
            if (rc != FaultHandler.OK) {
                return -rc;
            }
        } finally {
            vma.readUnlock();
        }
        long pfn = Pte.pfn(f.mm.entries.getAcquire(pte()));
        REGION.set(ValueLayout.JAVA_LONG, (pfn << 12) + offset, tag);
        return pfn;
    }

    private long pte() {
        long pmdval = f.mm.entries.getAcquire(f.pmdE);
        return Entries.entry(Pte.pfn(pmdval), Entries.index(TableFixture.VA, Entries.PAGE_SHIFT));
    }

    /** First writer. */
    @Actor
    public void actor1() {
        long r = faultAndTag(slot1, 0, TAG1);
        rc1 = r < 0 ? (int) -r : 0;
        pfn1 = r;
    }

    /** Second writer. */
    @Actor
    public void actor2() {
        long r = faultAndTag(slot2, 8, TAG2);
        rc2 = r < 0 ? (int) -r : 0;
        pfn2 = r;
    }

    /** Checks the state's mm, then unmaps the page and frees everything. */
    @Arbiter
    public void arbiter(II_Result r) {
        long pte = pte();
        long entry = f.mm.entries.getAcquire(pte);
        long pfn = Pte.pfn(entry);
        r.r1 = pfn1 == pfn && pfn2 == pfn ? 1 : 0;
        int bad = 0;
        if (rc1 != 0 || rc2 != 0) {
            bad |= 1;
        }
        if (f.mm.counters.rssPages.sum() != 1) {
            bad |= 2;
        }
        long base = pfn << 12;
        if (REGION.get(ValueLayout.JAVA_LONG, base) != TAG1 || REGION.get(ValueLayout.JAVA_LONG, base + 8) != TAG2) {
            bad |= 4;
        }
        if (f.mm.memMap.mapcountVolatile(pfn) != 1) {
            bad |= 8;
        }
        if (f.mm.counters.faultAnon.sum() != 1) {
            bad |= 16;
        }
        r.r2 = bad;
        f.mm.entries.setRelease(pte, 0);
        f.mm.memMap.addMapcount(pfn, -1);
        f.mm.frames.putFrames(pfn, 0);
        f.teardown();
    }
}
