package dev.offmm.core.ops;

import dev.offmm.core.VmConfig;
import dev.offmm.core.fault.FaultEntry;
import dev.offmm.core.fault.FaultHandler;
import dev.offmm.core.huge.HugeFault;
import dev.offmm.core.huge.HugePmd;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.mm.VmCounters;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PgtableAlloc;
import dev.offmm.core.pgtable.PtlHelpers;
import dev.offmm.core.pgtable.TableAlloc;
import dev.offmm.core.reclaim.FrameSource;
import dev.offmm.core.reclaim.Reclaimer;
import dev.offmm.core.unmap.FreePgtables;
import dev.offmm.core.unmap.TableShare;
import dev.offmm.core.unmap.Zap;
import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.lock.PtLocks;
import dev.offmm.offheap.zone.Zone;

import java.util.concurrent.locks.Lock;

/**
 * The one composition place of an address space: its state ({@link Mm}) and every service that
 * operates on it, each built once here and given only what it uses. Nothing else constructs a
 * service; {@code AddressSpace} and the test-support entry point both start here.
 *
 * @param memory       the physical memory
 * @param mm           the state: PGD, VMAs, counters, TLB generation
 * @param entries      page-table entries in the memory's region
 * @param ptLocks      the ptl words of this space's tables (inline or debug)
 * @param ptl          the lock helper family
 * @param tables       table frames with their constructors and destructors
 * @param pgtables     the populate protocol
 * @param reclaimer    grace periods
 * @param pages        order-0 frames, reclaiming under pressure
 * @param huge         huge entries: their stores and their split
 * @param handler      {@code handle_mm_fault}
 * @param faults       the fault entry with its VMA-lock policy
 * @param zap          zap and change_protection, and the gathers
 * @param freePgtables free_pgtables
 * @param ops          mmap, munmap, mprotect, madvise
 * @param shares       PTE tables shared after a fork, and their unsharing
 */
public record MmServices(PhysicalMemory memory, Mm mm, Entries entries, PtLocks ptLocks, PtlHelpers ptl,
                         TableAlloc tables, PgtableAlloc pgtables, Reclaimer reclaimer, FrameSource pages,
                         HugePmd huge, FaultHandler handler, FaultEntry faults, Zap zap, FreePgtables freePgtables, MapOps ops,
                         TableShare shares) {

    /**
     * Builds an empty address space on {@code memory}: allocates its PGD with
     * {@code page_table_lock}, then wires the services.
     *
     * @throws dev.offmm.core.VmException ENOMEM if the PGD or its lock cannot be allocated
     */
    public static MmServices create(PhysicalMemory memory, VmConfig config) {
        Zone zone = memory.zone();
        long id = Mm.nextId();
        boolean splitPte = Mm.splitPte(config.effectiveLockMode());
        boolean splitPmd = Mm.splitPmd(config.effectiveLockMode());
        VmCounters counters = new VmCounters();
        Entries entries = new Entries(zone.region());
        PtLocks ptLocks = new PtLocks(zone.memMap(), zone.lockSlab(), config.debugLocks());
        Reclaimer reclaimer = new Reclaimer();
        FrameSource pages = new FrameSource(zone.frames(), reclaimer);
        TableAlloc tables = new TableAlloc(entries, zone.memMap(), pages, ptLocks, zone.failPoints(), counters, id,
                splitPte, splitPmd);
        long pgd = tables.allocPgd();
        Mm mm = new Mm(id, memory, config, pgd, ptLocks.ptlockPtr(pgd), counters);
        PtlHelpers ptl = new PtlHelpers(ptLocks, entries, counters, splitPte, splitPmd, mm.pageTableLock());
        PgtableAlloc pgtables = new PgtableAlloc(tables, ptl, entries);
        HugePmd huge = new HugePmd(mm, entries, ptl, tables, zone.frames().huge());
        HugeFault hugeFaults = new HugeFault(mm, entries, ptl, tables, pages, huge);
        Zap zap = new Zap(mm, entries, ptl, zone.memMap(), reclaimer, zone.frames(), tables, huge);
        TableShare shares = new TableShare(mm, entries, ptl, tables, zone.memMap(), ptLocks, reclaimer, splitPte,
                zap);
        FaultHandler handler = new FaultHandler(mm, entries, pgtables, ptl, pages, zone.memMap(), hugeFaults,
                zone.region(), zap);
        FaultEntry faults = new FaultEntry(mm, handler, shares);
        FreePgtables freePgtables = new FreePgtables(mm, entries, ptl);
        Collapse collapse = new Collapse(mm, entries, ptl, tables, pages, huge, zap, reclaimer, zone.memMap(),
                zone.region(), shares);
        MapOps ops = new MapOps(mm, zap, freePgtables, handler, collapse, shares);
        return new MmServices(memory, mm, entries, ptLocks, ptl, tables, pgtables, reclaimer, pages, huge, handler,
                faults, zap, freePgtables, ops, shares);
    }

    /**
     * Tears down a child whose fork failed, before any thread could reach it: unmaps
     * everything (letting go of the tables it shared), waits for the grace periods and frees the
     * PGD. Its counters are not checked: the failure may have left them mid-count.
     */
    void closeForFailedFork() {
        Lock w = mm.vmas().mmapLock().writeLock();
        w.lock();
        long gen;
        try {
            mm.markClosed();
            ops.unmapAll();
            handler.retireAllReplaced();
            gen = mm.flushTlb();
        } finally {
            w.unlock();
        }
        reclaimer.retire(gen, new Reclaimer.Batch() {
            @Override
            public int frames() {
                return 1;
            }

            @Override
            public void release() {
                tables.freePgd(mm.pgd());
            }
        });
        reclaimer.awaitQuiescent(java.util.concurrent.TimeUnit.SECONDS.toNanos(10));
    }
}
