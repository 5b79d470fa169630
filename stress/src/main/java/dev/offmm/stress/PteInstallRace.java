package dev.offmm.stress;

import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.IIII_Result;

/**
 * The PTE-table install race ({@code __pte_alloc} / {@code pmd_install}): two actors call
 * {@code pteAlloc} on the same empty PMD entry. Each builds a table outside the lock, then
 * rechecks the entry under the PMD lock; the loser must destroy and free its table.
 *
 * <p>r1, r2: the actors' return codes (0 = OK). r3: violated invariants, as bits, checked by the
 * arbiter on the state's own mm: 1 the entry does not name a constructed, empty PTE table of
 * this mm with a free, initialised lock; 2 not exactly one PTE table alive; 4 frames held is not
 * PGD + PUD + PMD + one PTE table; 8 live page-table locks not exactly one more than before
 * (the loser's lock leaked or was freed twice). r4: populate races lost (0 or 1).
 */
@JCStressTest
@Outcome(id = "0, 0, 0, 0", expect = Expect.ACCEPTABLE, desc = "One actor installed; the other found the entry populated.")
@Outcome(id = "0, 0, 0, 1", expect = Expect.ACCEPTABLE_INTERESTING,
        desc = "Both built a table; the loser destroyed and freed its own, nothing leaked.")
@Outcome(expect = Expect.FORBIDDEN, desc = "Two tables, a lost or half-built table, a leaked frame or lock, or an error code.")
@State
public class PteInstallRace {
    private final TableFixture f = new TableFixture(StressMemory.SPLIT);

    /** First installer. */
    @Actor
    public void actor1(IIII_Result r) {
        r.r1 = f.mm.pgtables.pteAlloc(f.pmdE);
    }

    /** Second installer. */
    @Actor
    public void actor2(IIII_Result r) {
        r.r2 = f.mm.pgtables.pteAlloc(f.pmdE);
    }

    /** Checks the state's mm, then frees everything. */
    @Arbiter
    public void arbiter(IIII_Result r) {
        r.r3 = InstallChecks.violations(f);
        r.r4 = (int) f.mm.counters.tableRacesLost.sum();
        f.teardown();
    }
}
