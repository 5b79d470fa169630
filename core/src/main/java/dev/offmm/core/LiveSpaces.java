package dev.offmm.core;

import dev.offmm.core.event.AddressSpaceStatisticsEvent;
import dev.offmm.core.event.Jfr;
import dev.offmm.core.event.PhysicalMemoryStatisticsEvent;
import dev.offmm.offheap.PhysicalMemory;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;

/**
 * The live address spaces, for the periodic JFR statistics ({@code dev.offmm.AddressSpaceStatistics}
 * and {@code dev.offmm.PhysicalMemoryStatistics}): added by create and fork, removed by close, and
 * held weakly, so that a space its owner dropped unclosed (with its memory) is never kept alive here.
 */
final class LiveSpaces {
    /** Weak keys; AddressSpace keeps Object's identity equals and hashCode. */
    private static final Map<AddressSpace, Boolean> SPACES = new WeakHashMap<>();

    static {
        Jfr.addPeriodicEvent(AddressSpaceStatisticsEvent.class, LiveSpaces::emitSpaces);
        Jfr.addPeriodicEvent(PhysicalMemoryStatisticsEvent.class, LiveSpaces::emitMemories);
    }

    private LiveSpaces() {
    }

    /** Adds {@code space}; returns it. */
    static AddressSpace add(AddressSpace space) {
        synchronized (SPACES) {
            SPACES.put(space, Boolean.TRUE);
        }
        return space;
    }

    static void remove(AddressSpace space) {
        synchronized (SPACES) {
            SPACES.remove(space);
        }
    }

    /** Whether {@code space} is registered (closed or not): for tests. */
    static boolean contains(AddressSpace space) {
        synchronized (SPACES) {
            return SPACES.containsKey(space);
        }
    }

    /** The open spaces now (a copy). */
    static List<AddressSpace> snapshot() {
        List<AddressSpace> out;
        synchronized (SPACES) {
            out = new ArrayList<>(SPACES.keySet());
        }
        out.removeIf(AddressSpace::isClosed);
        return out;
    }

    private static void emitSpaces() {
        for (AddressSpace s : snapshot()) {
            AddressSpaceStatisticsEvent e = new AddressSpaceStatisticsEvent();
            if (!e.shouldCommit()) {
                return;
            }
            VmStats v = s.stats();
            e.space = s.services().mm().id();
            e.rssPages = v.rssPages();
            e.resident = v.rssPages() * AddressSpace.PAGE_SIZE;
            e.pageTables = v.pageTableBytes();
            e.vmas = v.vmaCount();
            long faults = 0;
            for (Map.Entry<String, Long> f : v.faults().entrySet()) {
                // The two fallbacks count a fault that another kind counts too (see VmStats).
                if (!f.getKey().equals("mmapLockFallback") && !f.getKey().equals("thpFallback")) {
                    faults += f.getValue();
                }
            }
            e.faults = faults;
            e.oomFaults = v.faults("oom");
            e.hugePages = v.hugePages();
            e.thpSplits = v.thpSplits();
            e.thpCollapses = v.thpCollapses();
            e.sharedTables = v.sharedTables();
            e.forks = v.forks();
            e.tlbFlushes = v.tlbFlushes();
            e.pendingFreeFrames = v.pendingFreeFrames();
            e.gracePeriods = v.gracePeriods();
            e.commit();
        }
    }

    private static void emitMemories() {
        Map<PhysicalMemory, Integer> spaces = new IdentityHashMap<>();
        for (AddressSpace s : snapshot()) {
            spaces.merge(s.memory(), 1, Integer::sum);
        }
        for (Map.Entry<PhysicalMemory, Integer> m : spaces.entrySet()) {
            PhysicalMemory mem = m.getKey();
            PhysicalMemoryStatisticsEvent e = new PhysicalMemoryStatisticsEvent();
            if (mem.isClosed() || !e.shouldCommit()) {
                continue;
            }
            try {
                e.memory = System.identityHashCode(mem);
                e.size = mem.bytes();
                e.committed = mem.committedBytes();
                e.freeFrames = mem.freeFrameCount();
                e.usedFrames = mem.usedFrameCount();
                e.spaces = m.getValue();
            } catch (IllegalStateException closedMeanwhile) {
                continue;
            }
            e.commit();
        }
    }
}
