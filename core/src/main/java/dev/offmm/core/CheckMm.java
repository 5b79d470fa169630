package dev.offmm.core;

import dev.offmm.core.mm.Mm;
import dev.offmm.core.mm.VmCounters;
import dev.offmm.core.ops.MmServices;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.offheap.LockClass;

import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reading an address space's counters: the {@link VmStats} snapshot, and the kernel's
 * {@code check_mm}, what a closed address space must have given back.
 */
final class CheckMm {
    private CheckMm() {
    }

    /** A snapshot of {@code mm}'s counters, with {@code pendingFrames} waiting for a grace period. */
    static VmStats snapshot(Mm mm, long pendingFrames) {
        VmCounters c = mm.counters();
        Map<String, Long> f = new LinkedHashMap<>();
        f.put("zero", c.faultZero.sum());
        f.put("anon", c.faultAnon.sum());
        f.put("cow", c.faultCow.sum());
        f.put("reuse", c.faultReuse.sum());
        f.put("spurious", c.faultSpurious.sum());
        f.put("maperr", c.faultMapErr.sum());
        f.put("accerr", c.faultAccErr.sum());
        f.put("oom", c.faultOom.sum());
        f.put("mmapLockFallback", c.faultMmapLockFallback.sum());
        Map<LockClass, Long> acq = new EnumMap<>(LockClass.class);
        Map<LockClass, Long> cont = new EnumMap<>(LockClass.class);
        for (LockClass k : LockClass.values()) {
            acq.put(k, c.lockAcquisitions[k.ordinal()].sum());
            cont.put(k, c.lockContentions[k.ordinal()].sum());
        }
        long page = Entries.PAGE_SIZE;
        // Unmodifiable views keep the insertion (and enum) order: Map.copyOf would not.
        return new VmStats(c.rssPages.sum(), c.pteTables.sum() * page, c.pmdTables.sum() * page,
                c.pudTables.sum() * page, mm.vmas().size(), Collections.unmodifiableMap(f),
                Collections.unmodifiableMap(acq), Collections.unmodifiableMap(cont),
                c.tlbFlushes.sum(), c.tableRacesLost.sum(), pendingFrames, c.pagesAllocated.sum(),
                c.pagesFreed.sum(), c.tablesAllocated.sum(), c.tablesFreed.sum(), c.gracePeriods.sum());
    }

    /**
     * Throws if anything leaked: {@code quiet} is whether every retired batch was released.
     *
     * @throws IllegalStateException naming each leak
     */
    static void verify(VmCounters c, MmServices services, boolean quiet) {
        List<String> bad = new ArrayList<>();
        if (!quiet) {
            List<String> holders = services.reclaimer().holders();
            bad.add(services.reclaimer().pendingFrames() + " frames still waiting for a grace period"
                    + (holders.isEmpty() ? "" : ", held by an access in progress on thread " + String.join(", ", holders)));
        }
        if (c.rssPages.sum() != 0) {
            bad.add("rss=" + c.rssPages.sum() + " pages");
        }
        long tables = c.pteTables.sum() + c.pmdTables.sum() + c.pudTables.sum();
        if (tables != 0) {
            bad.add("pgtables_bytes=" + tables * Entries.PAGE_SIZE);
        }
        if (c.framesHeld.sum() != 0) {
            bad.add("frames held=" + c.framesHeld.sum());
        }
        if (services.ptLocks().liveLocks() != 0) {
            bad.add("live page-table locks=" + services.ptLocks().liveLocks());
        }
        if (!bad.isEmpty()) {
            throw new IllegalStateException("check_mm: address space leaked: " + String.join(", ", bad));
        }
    }
}
