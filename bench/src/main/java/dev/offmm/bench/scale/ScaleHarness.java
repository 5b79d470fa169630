package dev.offmm.bench.scale;

import dev.offmm.bench.cli.Cli;
import dev.offmm.bench.cli.Ranges;
import dev.offmm.bench.cli.Version;
import dev.offmm.bench.stat.LiveCounters;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.TypeConversionException;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * The fault-scaling harness: sweeps workloads x targets x threads, prints a progress line and a
 * table, and writes CSV and PNG plots. {@code demo} is a short sweep: the same command with
 * other defaults.
 */
@Command(name = "scale", mixinStandardHelpOptions = true, versionProvider = Version.class, sortOptions = false,
        description = "The fault-scaling harness: workloads x targets x threads; a table, CSV and PNG plots.")
public final class ScaleHarness implements Callable<Integer> {
    private final boolean demo;

    @Option(names = "--workloads", split = ",", paramLabel = "W", converter = WorkloadConverter.class,
            completionCandidates = WorkloadNames.class,
            description = "pf1,pf4,disjoint,shared-table,thp,hugetlb (default ${DEFAULT-VALUE})")
    private List<Workload> workloads;

    @Option(names = "--threads", split = ",", paramLabel = "N", converter = ThreadCount.class,
            description = "thread counts, each 1..256 (default ${DEFAULT-VALUE}; for scale: 1, cores, 4x cores)")
    private List<Integer> threads;

    @Option(names = "--modes", split = ",", paramLabel = "MODE", converter = TargetConverter.class,
            completionCandidates = ModeNames.class,
            description = {"SINGLE,SPLIT_PTE,SPLIT_PTE_PMD, each optionally +debug and one of +noreport (free page"
                    + " reporting off), +hosthuge (MADV_HUGEPAGE), +cold (free memory reported at once: first touches),"
                    + " and kernel (default ${DEFAULT-VALUE})"})
    private List<Target> modes;

    @Option(names = "--no-kernel", description = "leave out the host kernel")
    private boolean noKernel;

    @Option(names = "--warmup", paramLabel = "S", converter = Warmup.class,
            description = "warm-up seconds per point, 0..3600 (default ${DEFAULT-VALUE})")
    private double warmup = 1;

    @Option(names = "--seconds", paramLabel = "S", converter = Seconds.class,
            description = "measured seconds per point, > 0 and <= 3600 (default ${DEFAULT-VALUE})")
    private double seconds;

    @Option(names = "--repeat", paramLabel = "N", converter = Repeat.class,
            description = "measure every point N times (1..100), the targets interleaved within each repetition;"
                    + " the table shows medians with their min-max (default ${DEFAULT-VALUE})")
    private int repeat = 1;

    @Option(names = "--no-zero", description = "leave out the zeroing floor ('zero': the same threads only zeroing"
            + " 4 KiB frames of a pool of the loop's size)")
    private boolean noZero;

    @Option(names = "--out", paramLabel = "DIR", description = "where CSV and PNG go (default ${DEFAULT-VALUE})")
    private Path out = Path.of("bench", "results");

    @Option(names = "--no-csv", description = "write no CSV")
    private boolean noCsv;

    @Option(names = "--no-plot", description = "write no PNG plots")
    private boolean noPlot;

    @Option(names = "--no-stat", description = "do not export live counters for 'offmm stat'")
    private boolean noStat;

    private List<Target> targets;
    private Machine machine;

    private ScaleHarness(boolean demo) {
        this.demo = demo;
        this.seconds = demo ? 2 : 3;
    }

    /**
     * The {@code scale} command, or with {@code demo} the {@code demo} command: two workloads, 1
     * and 2 threads, SINGLE, SPLIT_PTE_PMD and the kernel, 2 s per point.
     */
    public static CommandLine command(boolean demo) {
        ScaleHarness h = new ScaleHarness(demo);
        CommandLine cl = new CommandLine(h);
        cl.setDefaultValueProvider(arg -> arg instanceof OptionSpec o ? h.defaultOf(o.longestName()) : null);
        CommandSpec spec = cl.getCommandSpec();
        if (demo) {
            spec.name("demo");
            spec.usageMessage().description("A short fault-scaling sweep (the scale harness with smaller defaults):"
                    + " a table, CSV and PNG plots.");
        }
        Cli.footerTable(cl, "Workloads:", Arrays.stream(Workload.values())
                .map(w -> new String[] {w.cliName(), w.description()}).toArray(String[][]::new));
        return cl;
    }

    private String defaultOf(String option) {
        return switch (option) {
            case "--workloads" -> demo ? "pf1,disjoint" : "pf1,disjoint,shared-table";
            case "--threads" -> demo ? "1,2" : defaultThreads();
            case "--modes" -> demo ? "SINGLE,SPLIT_PTE_PMD,kernel" : "SINGLE,SPLIT_PTE,SPLIT_PTE_PMD,SPLIT_PTE_PMD+debug,kernel";
            default -> null;
        };
    }

    private static String defaultThreads() {
        int n = Runtime.getRuntime().availableProcessors();
        return n > 1 ? "1," + n + "," + 4 * n : "1," + 4 * n;
    }

    /** Runs the sweep. */
    @Override
    public Integer call() throws Exception {
        targets = new ArrayList<>(modes);
        if (noKernel) {
            targets.removeIf(Target::isKernel);
        }
        run(System.out);
        return 0;
    }

    /** Threads per point. */
    static final class ThreadCount extends Ranges.IntRange {
        ThreadCount() {
            super(1, 256);
        }
    }

    /** Repetitions. */
    static final class Repeat extends Ranges.IntRange {
        Repeat() {
            super(1, 100);
        }
    }

    /** Measured seconds: a window of 0 s measures nothing. */
    static final class Seconds extends Ranges.DoubleRange {
        Seconds() {
            super(0, false, 3600);
        }
    }

    /** Warm-up seconds, none allowed. */
    static final class Warmup extends Ranges.DoubleRange {
        Warmup() {
            super(0, true, 3600);
        }
    }

    /** {@link Workload#parse}, as a usage error. */
    static final class WorkloadConverter implements ITypeConverter<Workload> {
        @Override
        public Workload convert(String value) {
            try {
                return Workload.parse(value.trim());
            } catch (IllegalArgumentException e) {
                throw new TypeConversionException(e.getMessage());
            }
        }
    }

    /** {@link Target#parse}, as a usage error. */
    static final class TargetConverter implements ITypeConverter<Target> {
        @Override
        public Target convert(String value) {
            try {
                return Target.parse(value.trim());
            } catch (IllegalArgumentException e) {
                throw new TypeConversionException(e.getMessage());
            }
        }
    }

    /** Workload names, for completion. */
    static final class WorkloadNames implements Iterable<String> {
        @Override
        public Iterator<String> iterator() {
            return Arrays.stream(Workload.values()).map(Workload::cliName).iterator();
        }
    }

    /** Mode names, for completion. */
    static final class ModeNames implements Iterable<String> {
        @Override
        public Iterator<String> iterator() {
            return List.of("SINGLE", "SPLIT_PTE", "SPLIT_PTE_PMD", "SPLIT_PTE_PMD+debug", "kernel", "zero").iterator();
        }
    }

    private void run(PrintStream out) throws Exception {
        if (!noZero && !targets.contains(Target.ZERO)) {
            targets.add(Target.ZERO);
        }
        out.printf("offmm fault scaling: %d cores, %s, JDK %s; %.1f s warm-up + %.1f s per point, %d repetition%s%n",
                Runtime.getRuntime().availableProcessors(), System.getProperty("os.arch"),
                Runtime.version(), warmup, seconds, repeat, repeat == 1 ? "" : "s");
        machine = Machine.current();
        List<Result> results = new ArrayList<>();
        try (LiveCounters live = noStat ? null : LiveCounters.create()) {
            if (live != null) {
                out.println("live counters: " + live.file() + "  (watch with ./offmm stat)");
            }
            sweep(out, new Runner(warmup, seconds, System.err, live), results);
        }
        report(out, results);
    }

    /** Every repetition runs every point once, the targets side by side at each thread count. */
    private void sweep(PrintStream out, Runner runner, List<Result> results) throws Exception {
        for (int rep = 1; rep <= repeat; rep++) {
            for (Workload w : workloads) {
                for (int n : threads) {
                    for (Target t : targets) {
                        Result r = runner.run(w, t, n);
                        results.add(r);
                        String tag = repeat > 1 ? "[" + rep + "/" + repeat + "] " : "";
                        out.printf("  %s%-12s %-20s %2d threads %10s faults/s%n", tag, w.cliName(), t.name(), n,
                                Report.si(r.opsPerSecond()));
                    }
                }
            }
        }
    }

    private void report(PrintStream out, List<Result> results) throws Exception {
        Report report = new Report(results, targets);
        report.printTable(out);
        if (!noCsv) {
            Path file = out().resolve("scale.csv");
            report.writeCsv(file);
            out.println("CSV:  " + file);
        }
        if (!noPlot) {
            for (Path p : Plot.write(report.points(), out(), machine)) {
                out.println("plot: " + p);
            }
        }
    }

    private Path out() {
        return out;
    }
}
