package dev.offmm.bench.reclaim;

import dev.offmm.bench.cli.Cli;
import dev.offmm.bench.cli.Ranges;
import dev.offmm.bench.cli.Version;
import dev.offmm.core.AddressSpace;
import dev.offmm.core.Advice;
import dev.offmm.core.FaultException;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Mmu;
import dev.offmm.core.Prot;
import dev.offmm.core.VmConfig;
import dev.offmm.offheap.PhysicalMemory;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/**
 * Does memory come back whatever the threads do? Four scenarios, each printing its figures:
 * <ol>
 *   <li>{@code parked}: one attached context parked (never idle) while another thread cycles
 *       48 MiB of a 64 MiB memory through write + DONTNEED: OOMs, and how long each DONTNEED's
 *       frames stay pending (the grace-period wait);</li>
 *   <li>{@code cached}: 60 threads each free 1 MiB into their frame caches and park; how much of
 *       the memory the main thread can then use before OOM;</li>
 *   <li>{@code close}: {@code AddressSpace.close()} with another thread's context attached and
 *       parked;</li>
 *   <li>{@code dead}: map + touch + DONTNEED + munmap before and after 30,000 threads used the
 *       address space and died without closing anything.</li>
 * </ol>
 * Run with {@code ./offmm reclaim [parked|cached|close|dead ...] [--rounds N]}.
 */
@Command(name = "reclaim", mixinStandardHelpOptions = true, versionProvider = Version.class, sortOptions = false,
        description = "Does memory come back whatever the threads do: parked, cached, close, dead.")
public final class ReclaimHarness implements Callable<Integer> {
    private static final long MIB = 1L << 20;
    private static final long PAGE = 4096;
    private static final int RW = Prot.READ | Prot.WRITE;
    private static final List<String> SCENARIOS = List.of("parked", "cached", "close", "dead");

    @Spec
    private CommandSpec spec;

    @Parameters(arity = "0..*", paramLabel = "SCENARIO", completionCandidates = Scenarios.class,
            description = "parked, cached, close or dead, in the order given (default: all four)")
    private List<String> which = new ArrayList<>();

    @Option(names = "--rounds", paramLabel = "N", converter = Rounds.class,
            description = "rounds of the parked scenario, 1..1000000 (default ${DEFAULT-VALUE})")
    private int rounds = 1000;

    /** For picocli. */
    public ReclaimHarness() {
    }

    /** The command, with the scenarios in its help. */
    public static CommandLine command() {
        CommandLine cl = new CommandLine(new ReclaimHarness());
        Cli.footerTable(cl, "Scenarios:", new String[][] {
            {"parked", "one context attached and parked while another thread cycles 48 MiB of a 64 MiB memory through"
                    + " write + DONTNEED: OOMs, and how long each DONTNEED's frames stay pending"},
            {"cached", "60 threads each free 1 MiB into their frame caches and park; how much of the memory the main"
                    + " thread can then use before OOM"},
            {"close", "AddressSpace.close() with another thread's context attached and parked"},
            {"dead", "map + touch + DONTNEED + munmap before and after 30,000 threads used the space and died without"
                    + " closing anything"},
        });
        return cl;
    }

    /** Runs the named scenarios (all by default), after checking every name. */
    @Override
    public Integer call() throws Exception {
        for (String w : which) {
            if (!SCENARIOS.contains(w)) {
                throw new ParameterException(spec.commandLine(), "unknown scenario '" + w
                        + "' (expected parked, cached, close or dead)");
            }
        }
        for (String w : which.isEmpty() ? SCENARIOS : which) {
            switch (w) {
                case "parked" -> parked(rounds);
                case "cached" -> cached();
                case "close" -> close();
                case "dead" -> dead();
                default -> throw new IllegalStateException(w);
            }
        }
        return 0;
    }

    /** The scenario names, for completion. */
    static final class Scenarios implements Iterable<String> {
        @Override
        public Iterator<String> iterator() {
            return SCENARIOS.iterator();
        }
    }

    /** Rounds of the parked scenario. */
    static final class Rounds extends Ranges.IntRange {
        Rounds() {
            super(1, 1_000_000);
        }
    }

    /** Attaches on a new thread, touches {@code va}, parks until {@code done}: a quiet, never idle context. */
    private static Thread parkedContext(AddressSpace as, long va, CountDownLatch ready, CountDownLatch done) {
        Thread t = new Thread(() -> {
            try (Mmu mmu = as.attach()) {
                mmu.putLong(va, 1);
                ready.countDown();
                done.await();
            } catch (InterruptedException | IllegalStateException e) {
                // Ends with the scenario.
            }
        }, "parked-context");
        t.setDaemon(true);
        t.start();
        return t;
    }

    static void parked(int rounds) throws InterruptedException {
        try (PhysicalMemory memory = PhysicalMemory.create(64 * MIB);
             AddressSpace as = AddressSpace.create(memory, VmConfig.defaults())) {
            long other = as.mmap(0, PAGE, RW, MapFlags.NONE);
            CountDownLatch ready = new CountDownLatch(1);
            CountDownLatch done = new CountDownLatch(1);
            Thread quiet = parkedContext(as, other, ready, done);
            ready.await();
            long len = 48 * MIB;
            long a = as.mmap(0, len, RW, MapFlags.NORESERVE);
            long ooms = 0;
            long heldRounds = 0;
            long[] waits = new long[rounds];
            long[] madvise = new long[rounds];
            try (Mmu mmu = as.attach()) {
                for (int r = 0; r < rounds; r++) {
                    try {
                        for (long off = 0; off < len; off += PAGE) {
                            mmu.putLong(a + off, r);
                        }
                    } catch (FaultException e) {
                        if (e.kind() != FaultException.Kind.OOM) {
                            throw e;
                        }
                        ooms++;
                    }
                    long t0 = System.nanoTime();
                    as.madvise(a, len, Advice.DONTNEED);
                    long t1 = System.nanoTime();
                    madvise[r] = t1 - t0;
                    if (as.stats().pendingFreeFrames() > 0) {
                        heldRounds++;
                        while (as.stats().pendingFreeFrames() > 0) {
                            Thread.onSpinWait();
                        }
                        waits[r] = System.nanoTime() - t1;
                    }
                }
            }
            done.countDown();
            quiet.join();
            System.out.printf("parked: %d rounds of write 48 MiB + DONTNEED in a 64 MiB memory, one other context"
                    + " attached and parked: %d OOMs%n", rounds, ooms);
            System.out.println("  grace-period wait after DONTNEED returned (0 if its frames were already free; they were"
                    + " not in " + heldRounds + " rounds): " + percentiles(waits));
            System.out.println("  madvise(DONTNEED) of 48 MiB itself: " + percentiles(madvise));
        }
    }

    static void cached() throws InterruptedException {
        int threads = 60;
        try (PhysicalMemory memory = PhysicalMemory.create(64 * MIB);
             AddressSpace as = AddressSpace.create(memory, VmConfig.defaults())) {
            long total = memory.freeFrameCount();
            CountDownLatch parked = new CountDownLatch(threads);
            CountDownLatch done = new CountDownLatch(1);
            List<Thread> ts = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                Thread th = new Thread(() -> {
                    try (Mmu mmu = as.attach()) {
                        long b = as.mmap(0, MIB, RW, MapFlags.NONE);
                        for (long off = 0; off < MIB; off += PAGE) {
                            mmu.putLong(b + off, off);
                        }
                        as.munmap(b, MIB);
                        mmu.idle();
                        parked.countDown();
                        done.await();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                });
                th.setDaemon(true);
                th.start();
                ts.add(th);
            }
            parked.await();
            long cachedBefore = memory.cachedFrameCount();
            long a = as.mmap(0, 128 * MIB, RW, MapFlags.NORESERVE);
            long pages = 0;
            try (Mmu mmu = as.attach()) {
                for (long off = 0; off < 128 * MIB; off += PAGE) {
                    mmu.putLong(a + off, off);
                    pages++;
                }
            } catch (FaultException e) {
                if (e.kind() != FaultException.Kind.OOM) {
                    throw e;
                }
            }
            long tables = as.stats().pageTableBytes() / PAGE;
            System.out.printf("cached: %d threads each freed 1 MiB and parked (%d frames in their caches); the main thread"
                    + " then wrote %d pages (+%d table frames) of %d free frames before OOM: %.1f %% of the memory%n",
                    threads, cachedBefore, pages, tables, total, 100.0 * (pages + tables) / total);
            as.munmap(a, 128 * MIB);
            done.countDown();
            for (Thread th : ts) {
                th.join();
            }
        }
    }

    static void close() throws InterruptedException {
        int reps = 21;
        long[] times = new long[reps];
        for (int r = 0; r < reps; r++) {
            try (PhysicalMemory memory = PhysicalMemory.create(16 * MIB)) {
                AddressSpace as = AddressSpace.create(memory, VmConfig.defaults());
                long a = as.mmap(0, 4 * MIB, RW, MapFlags.POPULATE);
                CountDownLatch ready = new CountDownLatch(1);
                CountDownLatch done = new CountDownLatch(1);
                Thread quiet = parkedContext(as, a, ready, done);
                ready.await();
                long t0 = System.nanoTime();
                as.close();
                times[r] = System.nanoTime() - t0;
                done.countDown();
                quiet.join();
            }
        }
        System.out.println("close: AddressSpace.close() of a 4 MiB space, another thread's context attached and parked,"
                + " no leak reported: " + percentiles(times));
    }

    static void dead() throws InterruptedException {
        try (PhysicalMemory memory = PhysicalMemory.create(64 * MIB);
             AddressSpace as = AddressSpace.create(memory, VmConfig.defaults())) {
            long shared = as.mmap(0, MIB, RW, MapFlags.POPULATE);
            long before = mapMadviseNanos(as);
            int threads = 30_000;
            for (int i = 0; i < threads; i++) {
                int n = i;
                Thread t = new Thread(() -> {
                    if ((n & 1) == 0) {
                        as.putLong(shared + (n % 256) * PAGE, n);
                    } else {
                        as.attach().putLong(shared + (n % 256) * PAGE, n);
                    }
                });
                t.start();
                t.join();
            }
            long after = mapMadviseNanos(as);
            System.out.printf("dead: map 64 KiB + touch + DONTNEED + munmap: %.2f us before, %.2f us after %d threads"
                    + " used the space (half casual, half attached) and died without closing: %.3fx%n",
                    before / 1e3, after / 1e3, threads, (double) after / before);
        }
    }

    /** The median over 7 batches of the per-iteration cost of map + touch + DONTNEED + munmap. */
    private static long mapMadviseNanos(AddressSpace as) {
        long[] batches = new long[7];
        int iters = 2000;
        for (int b = -2; b < batches.length; b++) {
            long t0 = System.nanoTime();
            for (int i = 0; i < iters; i++) {
                long a = as.mmap(0, 64 * 1024, RW, MapFlags.NONE);
                as.putLong(a, i);
                as.madvise(a, 64 * 1024, Advice.DONTNEED);
                as.munmap(a, 64 * 1024);
            }
            if (b >= 0) {
                batches[b] = (System.nanoTime() - t0) / iters;
            }
        }
        Arrays.sort(batches);
        return batches[batches.length / 2];
    }

    private static String percentiles(long[] nanos) {
        long[] s = nanos.clone();
        Arrays.sort(s);
        return String.format("p50 %s, p99 %s, max %s (n=%d)", fmt(s[s.length / 2]),
                fmt(s[(int) Math.min(s.length - 1, Math.ceil(s.length * 0.99) - 1)]), fmt(s[s.length - 1]), s.length);
    }

    private static String fmt(long nanos) {
        if (nanos < 10_000) {
            return nanos + " ns";
        }
        if (nanos < 10_000_000) {
            return String.format("%.1f us", nanos / 1e3);
        }
        return String.format("%.1f ms", nanos / 1e6);
    }
}
