package dev.offmm.stress;

import dev.offmm.core.VmConfig;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PgtableAlloc;
import dev.offmm.core.pgtable.Pte;
import dev.offmm.offheap.MemMap;

/**
 * One small mm per jcstress state, so that its counters are exact for that state: the PGD, and
 * the PUD and PMD tables above {@link #VA}, leaving the PMD entry of {@link #VA} empty for the
 * actors. {@link #teardown} unlinks and frees every table and the PGD.
 */
final class TableFixture {
    /** The address whose PMD entry the actors race on. */
    static final long VA = 0x4000_0000L;

    final Mm mm;
    final long pgdE;
    final long pudE;
    final long pmdE;
    /** Live page-table locks before the actors run (page_table_lock, and the PMD table's split lock). */
    final long baseLocks;

    TableFixture(VmConfig config) {
        mm = new Mm(StressMemory.MEMORY, config);
        pgdE = Entries.entry(mm.pgdPfn, Entries.index(VA, Entries.PGDIR_SHIFT));
        check(mm.pgtables.pudAlloc(pgdE));
        pudE = Entries.entry(Pte.pfn(mm.entries.getAcquire(pgdE)), Entries.index(VA, Entries.PUD_SHIFT));
        check(mm.pgtables.pmdAlloc(pudE));
        pmdE = Entries.entry(Pte.pfn(mm.entries.getAcquire(pudE)), Entries.index(VA, Entries.PMD_SHIFT));
        baseLocks = mm.ptLocks.liveLocks();
    }

    private static void check(int r) {
        if (r != PgtableAlloc.OK) {
            throw new IllegalStateException("no memory for the fixture's tables (increase StressMemory)");
        }
    }

    /**
     * Whether the PMD entry names a fully constructed, empty PTE table of this mm whose lock is
     * initialised and free: type, owner, zeroed entries, and a lock that can be taken at once.
     */
    boolean publishedTableIsInitialised(long pmdval) {
        if (!Pte.present(pmdval) || Pte.huge(pmdval)) {
            return false;
        }
        long table = Pte.pfn(pmdval);
        MemMap map = mm.memMap;
        if (map.typeAcquire(table) != MemMap.TYPE_PTE_TABLE || map.ownerPlain(table) != mm.id || !mm.entries.tableEmpty(table)) {
            return false;
        }
        long ptl = mm.ptLocks.ptlockPtr(table);
        if (!mm.ptLocks.tryLock(ptl)) {
            return false;
        }
        mm.ptLocks.unlock(ptl);
        return true;
    }

    /** Unlinks and frees the PTE table (if any), the PMD and PUD tables and the PGD. */
    void teardown() {
        long pmdval = mm.entries.getAcquire(pmdE);
        if (pmdval != 0) {
            mm.entries.setRelease(pmdE, 0);
            mm.pgtables.freeTable(Pte.pfn(pmdval), PgtableAlloc.PTE);
        }
        long pudval = mm.entries.getAcquire(pudE);
        mm.entries.setRelease(pudE, 0);
        mm.pgtables.freeTable(Pte.pfn(pudval), PgtableAlloc.PMD);
        long pgdval = mm.entries.getAcquire(pgdE);
        mm.entries.setRelease(pgdE, 0);
        mm.pgtables.freeTable(Pte.pfn(pgdval), PgtableAlloc.PUD);
        mm.pgtables.freePgd(mm.pgdPfn);
    }
}
