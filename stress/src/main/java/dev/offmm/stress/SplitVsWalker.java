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
 * A split of a huge entry against a lockless walker that reads the PMD entry once (acquire), as
 * the TLB walk and ptdump do: it sees either the leaf, or the finished table. The split fills the
 * withdrawn table with plain stores and publishes it with a release store of the PMD entry, so a
 * walker that sees the table must see every PTE filled.
 *
 * <p>r1: 1 the walker saw the huge leaf, 2 it saw the table. r2: 1 the table it saw had a PTE
 * that does not map its subpage (an unfilled or torn table), 2 the split did not happen.
 */
@JCStressTest
@Outcome(id = "1, 0", expect = Expect.ACCEPTABLE, desc = "The walker read the leaf before the split published the table.")
@Outcome(id = "2, 0", expect = Expect.ACCEPTABLE, desc = "The walker read the table, filled.")
@Outcome(expect = Expect.FORBIDDEN, desc = "A table seen before its PTEs, or no split.")
@State
public class SplitVsWalker {
    private final PageTableProbe p = PageTableProbe.create(StressMemory.HUGE_MEMORY, StressMemory.SPLIT);
    private final PageTableProbe.Actor setup = p.actor();
    private final long pfn;
    private boolean split;

    /** Maps the huge page the actors race on (a state whose THP fault fell back has no huge entry). */
    public SplitVsWalker() {
        setup.thpWriteFault(0);
        pfn = p.hugePfn();
    }

    /** The split, as a partial DONTNEED or munmap starts it. */
    @Actor
    public void splitter() {
        split = pfn < 0 || setup.splitHuge();
    }

    /** The walker: one acquire load of the PMD entry, then (if a table) of PTEs 0, 5 and 511. */
    @Actor
    public void walker(II_Result r) {
        long pmd = p.pmdValueAcquire();
        if (PageTableProbe.table(pmd)) {
            r.r1 = 2;
            boolean filled = pfn < 0 || PageTableProbe.maps(p.pteAcquire(pmd, 511), pfn + 511)
                    && PageTableProbe.maps(p.pteAcquire(pmd, 5), pfn + 5) && PageTableProbe.maps(p.pteAcquire(pmd, 0), pfn);
            r.r2 = filled ? 0 : 1;
        } else {
            r.r1 = PageTableProbe.huge(pmd) ? 1 : 0;
        }
    }

    /** Checks the split ran, then unmaps and frees everything. */
    @Arbiter
    public void arbiter(II_Result r) {
        if (!split) {
            r.r2 |= 2;
        }
        p.close();
    }
}
