package dev.offmm.core;

import dev.offmm.core.mm.VmCounters;
import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.inject.FailSite;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The exhaustive fault-injection sweep: for every {@link FailSite} and every lock mode, a fixed
 * workload runs once per call the workload makes at that site, failing exactly that call (the
 * n-th, for n = 1..N). N is counted first: the sweep searches for the smallest n whose run makes
 * fewer than n calls (a run with failNth(n) that injects nothing), which is exact because the
 * workload is deterministic and single-threaded, and the physical memory is brought back to the
 * same state (frame caches drained, lock slab shrunk) before every run.
 *
 * <p>Each run must: surface the failure as {@link FaultException} OOM (an access or fault) or
 * {@link VmException} ENOMEM (creating the address space), or absorb it where that is the
 * contract (MAP_POPULATE stops quietly); leave the address space consistent (same mappings as the
 * run without failures, every value written before still there, a failed write changed nothing, a
 * fresh mmap + write + read works); and leak nothing (close passes check_mm, every frame and
 * debug lock back). {@link FaultInjectionTest} covers a shorter workload for the first 60 calls;
 * the model-based tester covers random failures ({@code ModelBasedRandomTest}).
 */
class FaultInjectionSweepTest {
    private static final long PAGE = 4096;
    private static final int RW = Prot.READ | Prot.WRITE;
    /** 16 pages across a 1 GiB boundary: two PMD tables, two PTE tables. */
    private static final long A = 0x4000_0000L - 8 * PAGE;
    /** 8 pages in another PGD slot. */
    private static final long B = 0x7f00_0000_0000L;
    /** 8 pages at the very top of the user space. */
    private static final long C = AddressSpace.USER_END - 8 * PAGE;
    private static final int MAX_CALLS = 4096;
    private static final long HUGE = 2L << 20;
    /** Two THP-advised 2 MiB pages at 2 GiB. */
    private static final long D = 0x8000_0000L;
    /** One hugetlb page right above. */
    private static final long E = D + 2 * HUGE;

    static Stream<Arguments> sitesAndModes() {
        return Stream.of(FailSite.values()).flatMap(site -> Modes.all().map(config -> Arguments.of(site, config)));
    }

    /** What one run of the workload saw. */
    private static final class Run {
        final List<String> surfaced = new ArrayList<>();
        /** Expected value of each written long, by address. */
        final TreeMap<Long, Long> values = new TreeMap<>();
        List<String> mappings;
        long injected;

        long referenceFallbacks(Run reference) {
            return reference.thpFallbacks;
        }
        /** Failures injected while a MAP_POPULATE mmap ran: absorbed by contract. */
        long injectedInPopulate;
        /** THP faults that fell back to 4 KiB pages: the other place a failure is absorbed by contract. */
        long thpFallbacks;
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("sitesAndModes")
    void shouldSurfaceOrAbsorbEveryInjectedFailureAndLeakNothing(FailSite site, VmConfig config) {
        try (PhysicalMemory memory = PhysicalMemory.create(16L << 20)) {
            long free = memory.freeFrameCount();
            Run reference = run(memory, config, site, 0, free);
            assertEquals(0, reference.injected);
            assertTrue(reference.surfaced.isEmpty(), "the workload fails by itself: " + reference.surfaced);
            if (site == FailSite.REPORT) {
                // Reporting runs on its own thread, and a failed report is absorbed by contract
                // (the block stays unreported): with every report failing, the workload must run
                // exactly as it does without failures.
                Run r = run(memory, config, site, -1, free);
                assertTrue(r.surfaced.isEmpty(), "a failed report surfaced: " + r.surfaced);
                assertEquals(reference.mappings, r.mappings, "failed reports changed the mappings");
                System.out.printf("sweep REPORT %s: %d reports failed, none surfaced%n", config.lockMode(), r.injected);
                return;
            }
            int calls = countCalls(memory, config, site, free);
            if (!config.debugLocks() && (site == FailSite.PTLOCK || site == FailSite.SLAB_PAGE)) {
                assertEquals(0, calls, "inline lock words allocate nothing");
                return;
            }
            assertTrue(calls > 0, site + " is never reached by the workload");
            int surfaced = 0;
            for (int n = 1; n <= calls; n++) {
                Run r = run(memory, config, site, n, free);
                assertEquals(1, r.injected, site + " #" + n + " of " + calls + ": the workload is not deterministic");
                if (!r.surfaced.isEmpty()) {
                    surfaced++;
                } else {
                    assertTrue(r.injectedInPopulate == 1 || r.thpFallbacks > r.referenceFallbacks(reference),
                            site + " #" + n + ": the failure vanished outside MAP_POPULATE and THP fallback");
                }
                if (r.mappings != null) {
                    assertEquals(reference.mappings, r.mappings, site + " #" + n + ": a failure changed the mappings");
                }
            }
            assertTrue(surfaced > 0, site + ": none of " + calls + " failures surfaced (all absorbed?)");
            System.out.printf("sweep %s %s%s: %d calls failed one by one, %d surfaced, %d absorbed%n", site,
                    config.lockMode(), config.debugLocks() ? "+debug" : "", calls, surfaced, calls - surfaced);
        }
    }

    /**
     * The number of calls the workload makes at {@code site}: the largest n whose run still
     * injects its failure, found by doubling then bisecting (each probe is one run).
     */
    private static int countCalls(PhysicalMemory memory, VmConfig config, FailSite site, long free) {
        int hi = 1;
        while (run(memory, config, site, hi, free).injected > 0) {
            hi *= 2;
            if (hi > MAX_CALLS) {
                fail(site + ": more than " + MAX_CALLS + " calls, or the failure is retried forever");
            }
        }
        int lo = hi / 2;
        while (hi - lo > 1) {
            int mid = (lo + hi) >>> 1;
            if (run(memory, config, site, mid, free).injected > 0) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        return lo;
    }

    /**
     * One run with the {@code n}-th call of {@code site} failing ({@code n == 0}: none; {@code n < 0}: every call), then the
     * consistency and leak checks with the fail points disarmed.
     */
    private static Run run(PhysicalMemory memory, VmConfig config, FailSite site, int n, long free) {
        Run r = new Run();
        String what = site + " #" + n + " " + config.lockMode() + (config.debugLocks() ? "+debug" : "");
        memory.zone().failPoints().disarmAll();
        if (n > 0) {
            memory.zone().failPoints().failNth(site, n);
        } else if (n < 0) {
            memory.zone().failPoints().failAlways(site);
        }
        long before = memory.zone().failPoints().injected(site);
        AddressSpace as = null;
        try {
            as = AddressSpace.create(memory, config);
        } catch (VmException e) {
            assertEquals(VmException.Code.ENOMEM, e.code(), what);
            assertTrue(e.getMessage().contains("no "), what + ": " + e.getMessage());
            r.surfaced.add("create: " + e.getMessage());
        }
        if (as != null) {
            try (Mmu mmu = as.attach()) {
                workload(as, mmu, r, what, () -> memory.zone().failPoints().injected(site));
            }
            r.injected = memory.zone().failPoints().injected(site) - before;
            memory.zone().failPoints().disarmAll();
            checkConsistent(as, r, what);
            as.close();
        } else {
            r.injected = memory.zone().failPoints().injected(site) - before;
            memory.zone().failPoints().disarmAll();
        }
        memory.zone().frames().drainCurrentThread();
        memory.zone().lockSlab().shrink();
        assertEquals(free, memory.freeFrameCount(), what + ": frames leaked");
        assertEquals(0, memory.zone().lockSlab().liveLocks(), what + ": debug locks leaked");
        return r;
    }

    /** A fixed workload over three PGD slots, touching every kind of allocation the core makes. */
    private static void workload(AddressSpace as, Mmu mmu, Run r, String what, LongRead injected) {
        long i0 = injected.get();
        as.mmap(A, 16 * PAGE, RW, MapFlags.FIXED | MapFlags.POPULATE);
        r.injectedInPopulate += injected.get() - i0;
        as.mmap(B, 8 * PAGE, RW, MapFlags.FIXED);
        i0 = injected.get();
        as.mmap(C, 8 * PAGE, Prot.READ, MapFlags.FIXED | MapFlags.POPULATE);
        r.injectedInPopulate += injected.get() - i0;
        for (int p = 0; p < 8; p++) {
            long b = B + p * PAGE + 8;
            long c = C + p * PAGE;
            write(r, what, b, 100 + p, p % 2 == 0 ? v -> mmu.putLong(b, v) : v -> as.putLong(b, v));
            read(r, what, c, () -> as.getLong(c));
        }
        for (int p = 0; p < 16; p++) {
            long a = A + p * PAGE;
            read(r, what, a + 8, () -> mmu.getLong(a + 8));
            write(r, what, a + 16, 200 + p, v -> mmu.putLong(a + 16, v));
        }
        attempt(r, what, A + 3 * PAGE, () -> {
            try (PinnedPage pin = mmu.pin(A + 3 * PAGE, true)) {
                pin.segment().get(ValueLayout.JAVA_LONG, 16);
            }
        });
        as.mprotect(A, 8 * PAGE, Prot.READ);
        as.mprotect(A, 8 * PAGE, RW);
        as.madvise(A + 4 * PAGE, 4 * PAGE, Advice.DONTNEED);
        forget(r, A + 4 * PAGE, A + 8 * PAGE, true);
        for (int p = 4; p < 8; p++) {
            long a = A + p * PAGE + 24;
            write(r, what, a, 300 + p, v -> as.putLong(a, v));
        }
        as.mmap(B, 4 * PAGE, RW, MapFlags.FIXED);
        forget(r, B, B + 4 * PAGE, true);
        write(r, what, B + PAGE, 400, v -> mmu.putLong(B + PAGE, v));
        as.munmap(C, 8 * PAGE);
        forget(r, C, C + 8 * PAGE, false);
        attempt(r, what, B + 5 * PAGE, () -> as.fault(B + 5 * PAGE, true));
        attempt(r, what, A + 2 * PAGE, () -> as.fault(A + 2 * PAGE, false));
        byte[] bulk = new byte[(int) (3 * PAGE)];
        Arrays.fill(bulk, (byte) 7);
        if (attempt(r, what, A + 10 * PAGE, () -> mmu.write(A + 10 * PAGE, bulk, 0, bulk.length))) {
            for (int p = 10; p < 13; p++) {
                r.values.put(A + p * PAGE + 8, 0x0707_0707_0707_0707L);
                r.values.put(A + p * PAGE + 16, 0x0707_0707_0707_0707L);
            }
        }
        hugeWorkload(as, mmu, r, what);
        forkWorkload(as, r, what);
        r.mappings = as.mappings();
    }

    /**
     * A fork (ENOMEM for a table, a 2 MiB copy of the hugetlb page or the child's PGD), then in
     * the child: every value reads as in the parent, and writes into a shared table (an unshare:
     * a table to copy) and into pages shared copy-on-write (a page to copy) either fail with OOM
     * or stay the child's. The parent's values are checked afterwards as always.
     */
    private static void forkWorkload(AddressSpace as, Run r, String what) {
        AddressSpace child;
        try {
            child = as.fork();
        } catch (VmException e) {
            assertEquals(VmException.Code.ENOMEM, e.code(), what + ": " + e.getMessage());
            r.surfaced.add("fork: " + e.getMessage());
            return;
        }
        int before = r.surfaced.size();
        try {
            for (Map.Entry<Long, Long> e : r.values.entrySet()) {
                long va = e.getKey();
                long[] got = new long[1];
                if (attempt(r, what, va, () -> got[0] = child.getLong(va))) {
                    assertEquals((long) e.getValue(), got[0], what + ": the child reads what the parent wrote at 0x"
                            + Long.toHexString(va));
                }
            }
            long[] targets = {A + 16, A + 5 * PAGE + 24, B + PAGE, D + 8, E + 24};
            for (long va : targets) {
                if (attempt(r, what, va, () -> child.putLong(va, -va))) {
                    assertEquals(-va, child.getLong(va), what + ": the child's write at 0x" + Long.toHexString(va));
                }
            }
            if (r.surfaced.size() > before) {
                assertTrue(child.stats().faults("oom") > 0, what + ": an OOM surfaced in the child but was not counted");
            }
            // A copy-on-write fault that fails for want of a page first gives back the pages its
            // context replaced and tries again: absorbed by contract, like a THP fallback.
            r.thpFallbacks += child.services().mm().counters().sum(VmCounters.COW_RECLAIM_RETRIES);
        } finally {
            // The child's failures are the child's: the parent's OOM count need not show them.
            for (int i = before; i < r.surfaced.size(); i++) {
                r.surfaced.set(i, "child: " + r.surfaced.get(i));
            }
            child.close();
        }
    }

    /**
     * 2 MiB pages: two THP faults (a failed order-9 frame or deposited table falls back to 4 KiB
     * pages), a split by a partial mprotect, a collapse (ENOMEM without a 2 MiB frame), and a
     * hugetlb fault (OOM, no fallback).
     */
    private static void hugeWorkload(AddressSpace as, Mmu mmu, Run r, String what) {
        as.mmap(D, 2 * HUGE, RW, MapFlags.FIXED);
        as.madvise(D, 2 * HUGE, Advice.HUGEPAGE);
        long fb = as.stats().faults("thpFallback");
        write(r, what, D + 8, 500, v -> mmu.putLong(D + 8, v));
        write(r, what, D + HUGE + 16, 501, v -> mmu.putLong(D + HUGE + 16, v));
        r.thpFallbacks += as.stats().faults("thpFallback") - fb;
        as.mprotect(D + HUGE - PAGE, PAGE, Prot.READ);
        as.mprotect(D + HUGE - PAGE, PAGE, RW);
        write(r, what, D + 5 * PAGE, 502, v -> mmu.putLong(D + 5 * PAGE, v));
        try {
            as.madvise(D, HUGE, Advice.COLLAPSE);
        } catch (VmException e) {
            assertEquals(VmException.Code.ENOMEM, e.code(), what + ": " + e.getMessage());
            r.surfaced.add("collapse: " + e.getMessage());
        }
        as.mmap(E, HUGE, RW, MapFlags.FIXED | MapFlags.HUGETLB);
        write(r, what, E + 24, 600, v -> mmu.putLong(E + 24, v));
    }

    private interface LongWrite {
        void put(long v);
    }

    private interface LongRead {
        long get();
    }

    private static void write(Run r, String what, long va, long v, LongWrite w) {
        if (attempt(r, what, va, () -> w.put(v))) {
            r.values.put(va, v);
        }
    }

    private static void read(Run r, String what, long va, LongRead rd) {
        long[] got = new long[1];
        if (attempt(r, what, va, () -> got[0] = rd.get())) {
            assertEquals(r.values.getOrDefault(va, 0L), got[0], what + ": read at 0x" + Long.toHexString(va));
        }
    }

    /** Runs an access; an injected failure must surface as OOM at the access's address. */
    private static boolean attempt(Run r, String what, long va, Runnable access) {
        try {
            access.run();
            return true;
        } catch (FaultException e) {
            assertEquals(FaultException.Kind.OOM, e.kind(), what + ": " + e.getMessage());
            assertTrue(e.address() >= va && e.address() < (va & -PAGE) + 3 * PAGE, what + ": " + e.getMessage());
            r.surfaced.add(e.getMessage());
            return false;
        }
    }

    /** DONTNEED or a FIXED remap reads zeros from now on; munmap drops the addresses. */
    private static void forget(Run r, long start, long end, boolean zero) {
        for (Map.Entry<Long, Long> e : r.values.subMap(start, end).entrySet()) {
            e.setValue(0L);
        }
        if (!zero) {
            r.values.subMap(start, end).clear();
        }
    }

    /** After the run, disarmed: every write that succeeded is there, every one that failed changed nothing. */
    private static void checkConsistent(AddressSpace as, Run r, String what) {
        assertEquals(r.mappings, as.mappings(), what);
        for (Map.Entry<Long, Long> e : r.values.entrySet()) {
            assertEquals(e.getValue(), as.getLong(e.getKey()), what + ": value at 0x" + Long.toHexString(e.getKey()));
        }
        for (int p = 0; p < 16; p++) {
            long va = A + p * PAGE + 16;
            if (!r.values.containsKey(va)) {
                assertEquals(0, as.getLong(va), what + ": a failed write changed 0x" + Long.toHexString(va));
            }
        }
        long fresh = as.mmap(0, 2 * PAGE, RW, MapFlags.NONE);
        as.putLong(fresh + PAGE - 4, 0x1234_5678_9abcL);
        assertEquals(0x1234_5678_9abcL, as.getLong(fresh + PAGE - 4), what + ": fresh mapping after the failure");
        if (r.surfaced.stream().anyMatch(s -> s.startsWith("OOM"))) {
            assertTrue(as.stats().faults("oom") > 0, what + ": an OOM surfaced but was not counted");
        }
    }
}
