package dev.offmm.core.model;

import dev.offmm.core.LockMode;
import dev.offmm.core.Thp;
import dev.offmm.core.VmConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Model-based random testing: three threads run seeded mmap / munmap / mprotect / madvise /
 * faults / Mmu and casual accesses / pins in their own zones of one address space (sharing
 * page tables and locks at the zone edges), each checked operation by operation against a
 * sequential reference model, with global checks of mappings, page tables, RSS and contents
 * whenever the threads meet, and a leak check at close. Over every lock mode the run covers
 * 1,008,000 operations. The seeds are fixed so that CI is reproducible; the soak
 * ({@link ModelSoakTest}) takes any seed and count.
 */
class ModelBasedRandomTest {
    static final int THREADS = 3;
    /** Per thread and mode: 3 threads x 6 modes x 56,000 = 1,008,000 operations. */
    static final long OPS_PER_THREAD = 56_000;

    /**
     * Every lock mode, inline and debug locks (the spec suites' Modes, which this package cannot
     * reach); THP policy MADVISE with inline locks, ALWAYS with debug ones.
     */
    static Stream<VmConfig> modes() {
        return Stream.of(LockMode.SINGLE, LockMode.SPLIT_PTE, LockMode.SPLIT_PTE_PMD)
                .flatMap(m -> Stream.of(false, true).map(d -> VmConfig.builder().lockMode(m).debugLocks(d)
                        .thp(d ? Thp.ALWAYS : Thp.MADVISE).build()));
    }

    static long seedOf(VmConfig config) {
        return 0x0ff_3a11L + config.lockMode().ordinal() * 2L + (config.debugLocks() ? 1 : 0);
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldAgreeWithTheModelUnderConcurrentOperations(VmConfig config) {
        ModelRun.Result r = ModelRun.run(config, seedOf(config), ModelRun.Options.of(THREADS, OPS_PER_THREAD));
        assertEquals(THREADS * OPS_PER_THREAD, r.ops());
        System.out.printf("model %s%s: %d ops in %d ms, %d TLB flushes, %d table races lost%n%s", config.lockMode(),
                config.debugLocks() ? "+debug" : "", r.ops(), r.millis(), r.stats().tlbFlushes(), r.stats().tableRacesLost(),
                r.outcomeTable());
        // The run went through the error paths, not only the happy ones.
        String[][] required = {
            {"MMAP", "ok"}, {"MMAP", "EEXIST"}, {"MUNMAP", "ok"}, {"MPROTECT", "ok"}, {"MPROTECT", "ENOMEM"},
            {"MADVISE", "ok"}, {"MADVISE", "ENOMEM"}, {"FAULT", "MAPERR"}, {"FAULT", "ACCERR"}, {"MMU_GET", "ok"},
            {"MMU_GET", "MAPERR"}, {"MMU_GET", "ACCERR"}, {"MMU_PUT", "ok"}, {"MMU_PUT", "ACCERR"}, {"MMU_ATOMIC", "EINVAL"},
            {"MMU_WRITE", "MAPERR"}, {"AS_PUT", "ACCERR"}, {"AS_WRITE", "ok"}, {"PIN", "ok"}, {"PIN", "ACCERR"},
            {"SHARED_WRITE", "ACCERR"}, {"BAD_ARGS", "EPERM"}, {"BAD_ARGS", "EEXIST"}, {"MMAP_ANYWHERE", "ACCERR"},
        };
        for (String[] k : required) {
            assertTrue(r.count(Op.Kind.valueOf(k[0]), k[1]) > 0, "no " + k[0] + " ended with " + k[1] + "\n" + r.outcomeTable());
        }
        // And through the 2 MiB paths: THP and hugetlb faults, splits by partial operations, collapses.
        System.out.printf("  huge: thp=%d hugetlb=%d fallback=%d splits=%d collapses=%d%n", r.stats().faults("thp"),
                r.stats().faults("hugetlb"), r.stats().faults("thpFallback"), r.stats().thpSplits(), r.stats().thpCollapses());
        assertTrue(r.stats().faults("thp") > 0 && r.stats().faults("hugetlb") > 0, "no huge faults");
        assertTrue(r.stats().thpSplits() > 0 && r.stats().thpCollapses() > 0, "no splits or collapses");
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldAgreeWithTheModelUnderRandomAllocationFailures(VmConfig config) {
        ModelRun.Options o = ModelRun.Options.of(THREADS, 6_000).withFailures(0.02);
        ModelRun.Result r = ModelRun.run(config, seedOf(config) + 100, o);
        assertTrue(r.injected() > 0, "no failure was injected");
        System.out.printf("model with failures %s%s: %d ops, %d failures injected, %d ms%n", config.lockMode(),
                config.debugLocks() ? "+debug" : "", r.ops(), r.injected(), r.millis());
    }

    /** Every mode, with fork's table sharing on and off. */
    static Stream<VmConfig> forkModes() {
        return modes().flatMap(c -> Stream.of(true, false).map(share -> VmConfig.builder().lockMode(c.lockMode())
                .debugLocks(c.debugLocks()).thp(c.thp()).sharePageTables(share).build()));
    }

    @ParameterizedTest
    @MethodSource("forkModes")
    void shouldAgreeWithTheModelAcrossForks(VmConfig config) {
        ModelRun.Options o = ModelRun.Options.of(THREADS, 12_000).withForks(0.6);
        ModelRun.Result r = ModelRun.run(config, seedOf(config) + 200 + (config.sharePageTables() ? 1 : 0), o);
        System.out.printf("model with forks %s%s share=%s: %d ops, %s, %d ms%n", config.lockMode(),
                config.debugLocks() ? "+debug" : "", config.sharePageTables(), r.ops(), r.forks(), r.millis());
        assertTrue(r.forked() >= 5, "too few forks: " + r.forks());
    }

    @ParameterizedTest
    @MethodSource("forkModes")
    void shouldAgreeWithTheModelAcrossForksUnderRandomAllocationFailures(VmConfig config) {
        ModelRun.Options o = ModelRun.Options.of(THREADS, 4_000).withForks(0.5).withFailures(0.02);
        ModelRun.Result r = ModelRun.run(config, seedOf(config) + 300 + (config.sharePageTables() ? 1 : 0), o);
        assertTrue(r.injected() > 0, "no failure was injected");
        System.out.printf("model with forks and failures %s%s share=%s: %d ops, %d failures injected, %s, %d ms%n",
                config.lockMode(), config.debugLocks() ? "+debug" : "", config.sharePageTables(), r.ops(), r.injected(),
                r.forks(), r.millis());
    }

    @Test
    void shouldCatchAndShrinkAWriteTheModelWasNotToldAbout() {
        // The control: a tester that cannot fail proves nothing. One write behind the model's back,
        // just before the threads meet, must be reported with the seed, a trace and a short replay.
        VmConfig config = VmConfig.builder().lockMode(LockMode.SPLIT_PTE_PMD).build();
        ModelRun.Options o = new ModelRun.Options(THREADS, 3000, 1000, 64L << 20, 0, 999, true);
        AssertionError e = assertThrows(AssertionError.class, () -> ModelRun.run(config, 42, o));
        String report = e.getMessage();
        assertTrue(report.contains("seed=42"), report);
        assertTrue(report.contains("ROGUE"), report);
        assertTrue(report.contains("the failure reproduces; shrunk"), report);
        int shrunkTo = Integer.parseInt(report.replaceAll("(?s).*shrunk from \\d+ to (\\d+) ops.*", "$1"));
        assertTrue(shrunkTo <= 4, "shrunk to " + shrunkTo + " ops:\n" + report);
        System.out.println("the control's report:\n" + report);
    }
}
