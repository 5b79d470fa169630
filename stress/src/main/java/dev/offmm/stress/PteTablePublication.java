package dev.offmm.stress;

import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.I_Result;

/**
 * Publication of a PTE table: one actor installs it ({@code pteAlloc}: allocate, zero, construct
 * the lock, then a release store of the PMD entry under the PMD lock); an observer that loads the
 * PMD entry with acquire and sees a table must see it fully built: its struct page typed as a PTE
 * table of this mm, its entries zero, its lock word (inline) or lock record (debug, through
 * {@code ptlockPtr}) initialised and free.
 *
 * <p>r1: 0 the observer saw no table yet; 1 it saw a fully built one; 2 it saw one half built.
 */
@JCStressTest
@Outcome(id = "0", expect = Expect.ACCEPTABLE, desc = "Not yet published.")
@Outcome(id = "1", expect = Expect.ACCEPTABLE, desc = "Published, and everything before the release store is visible.")
@Outcome(expect = Expect.FORBIDDEN, desc = "A published table whose type, contents or lock are not initialised.")
@State
public class PteTablePublication {
    private final TableFixture f = new TableFixture(StressMemory.SPLIT);

    /** Installs the table. */
    @Actor
    public void installer() {
        f.mm.pgtables.pteAlloc(f.pmdE);
    }

    /** A lockless walker's view of the PMD entry. */
    @Actor
    public void observer(I_Result r) {
        long pmdval = f.mm.entries.getAcquire(f.pmdE);
        if (pmdval == 0) {
            r.r1 = 0;
            return;
        }
        boolean ok;
        try {
            ok = f.publishedTableIsInitialised(pmdval);
        } catch (IllegalStateException e) {
            // A debug ptl word not yet set: ptlockPtr says the constructor did not run.
            ok = false;
        }
        r.r1 = ok ? 1 : 2;
    }

    /** Frees everything. */
    @Arbiter
    public void arbiter() {
        f.teardown();
    }
}
