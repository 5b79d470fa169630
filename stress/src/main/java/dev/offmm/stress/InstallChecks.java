package dev.offmm.stress;

/** The arbiter checks of the PTE-table install tests, as a bit set (0 = every invariant holds). */
final class InstallChecks {
    private InstallChecks() {
    }

    static int violations(TableFixture f) {
        int bad = 0;
        if (!f.publishedTableIsInitialised(f.mm.entries.getAcquire(f.pmdE))) {
            bad |= 1;
        }
        if (f.mm.counters.pteTables.sum() != 1) {
            bad |= 2;
        }
        if (f.mm.counters.framesHeld.sum() != 4) {
            bad |= 4;
        }
        if (f.mm.ptLocks.liveLocks() != f.baseLocks + 1) {
            bad |= 8;
        }
        return bad;
    }
}
