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
        long[] t = mm.counters().totals();
        Map<String, Long> f = new LinkedHashMap<>();
        f.put("zero", t[VmCounters.FAULT_ZERO]);
        f.put("anon", t[VmCounters.FAULT_ANON]);
        f.put("cow", t[VmCounters.FAULT_COW]);
        f.put("reuse", t[VmCounters.FAULT_REUSE]);
        f.put("spurious", t[VmCounters.FAULT_SPURIOUS]);
        f.put("maperr", t[VmCounters.FAULT_MAPERR]);
        f.put("accerr", t[VmCounters.FAULT_ACCERR]);
        f.put("oom", t[VmCounters.FAULT_OOM]);
        f.put("mmapLockFallback", t[VmCounters.FAULT_MMAP_LOCK_FALLBACK]);
        f.put("thp", t[VmCounters.FAULT_THP]);
        f.put("hugetlb", t[VmCounters.FAULT_HUGETLB]);
        f.put("thpFallback", t[VmCounters.THP_FALLBACK]);
        f.put("cowCopy", t[VmCounters.FAULT_COW_COPY]);
        Map<String, Long> u = new LinkedHashMap<>();
        u.put("copied", t[VmCounters.UNSHARE_COPIED]);
        u.put("kept", t[VmCounters.UNSHARE_KEPT]);
        u.put("dropped", t[VmCounters.UNSHARE_DROPPED]);
        Map<LockClass, Long> acq = new EnumMap<>(LockClass.class);
        Map<LockClass, Long> cont = new EnumMap<>(LockClass.class);
        for (LockClass k : LockClass.values()) {
            acq.put(k, t[VmCounters.LOCK_ACQUISITIONS + k.ordinal()]);
            cont.put(k, t[VmCounters.LOCK_CONTENTIONS + k.ordinal()]);
        }
        long page = Entries.PAGE_SIZE;
        // Unmodifiable views keep the insertion (and enum) order: Map.copyOf would not.
        return new VmStats(t[VmCounters.RSS], t[VmCounters.PTE_TABLES] * page, t[VmCounters.PMD_TABLES] * page,
                t[VmCounters.PUD_TABLES] * page, mm.vmas().size(), Collections.unmodifiableMap(f),
                Collections.unmodifiableMap(acq), Collections.unmodifiableMap(cont),
                t[VmCounters.TLB_FLUSHES], t[VmCounters.TABLE_RACES_LOST], pendingFrames, t[VmCounters.PAGES_ALLOCATED],
                t[VmCounters.PAGES_FREED], t[VmCounters.TABLES_ALLOCATED], t[VmCounters.TABLES_FREED],
                t[VmCounters.GRACE_PERIODS], t[VmCounters.HUGE_PAGES], t[VmCounters.THP_SPLIT],
                t[VmCounters.THP_COLLAPSE], t[VmCounters.SHARED_TABLES], Collections.unmodifiableMap(u),
                t[VmCounters.FORKS], t[VmCounters.FORK_PINNED_COPIES]);
    }

    /**
     * Throws if anything leaked: {@code quiet} is whether every retired batch was released.
     *
     * @throws IllegalStateException naming each leak
     */
    static void verify(VmCounters counters, MmServices services, boolean quiet) {
        long[] c = counters.totals();
        List<String> bad = new ArrayList<>();
        if (!quiet) {
            List<String> holders = services.reclaimer().holders();
            bad.add(services.reclaimer().pendingFrames() + " frames still waiting for a grace period"
                    + (holders.isEmpty() ? "" : ", held by an access in progress on thread " + String.join(", ", holders)));
        }
        if (c[VmCounters.RSS] != 0) {
            bad.add("rss=" + c[VmCounters.RSS] + " pages");
        }
        long tables = c[VmCounters.PTE_TABLES] + c[VmCounters.PMD_TABLES] + c[VmCounters.PUD_TABLES];
        if (tables != 0) {
            bad.add("pgtables_bytes=" + tables * Entries.PAGE_SIZE);
        }
        if (c[VmCounters.HUGE_PAGES] != 0) {
            bad.add("huge pages mapped=" + c[VmCounters.HUGE_PAGES]);
        }
        if (c[VmCounters.FRAMES_HELD] != 0) {
            bad.add("frames held=" + c[VmCounters.FRAMES_HELD]);
        }
        if (services.ptLocks().liveLocks() != 0) {
            bad.add("live page-table locks=" + services.ptLocks().liveLocks());
        }
        if (!bad.isEmpty()) {
            throw new IllegalStateException("check_mm: address space leaked: " + String.join(", ", bad));
        }
    }
}
