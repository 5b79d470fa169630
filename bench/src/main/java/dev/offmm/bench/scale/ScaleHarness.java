package dev.offmm.bench.scale;

import dev.offmm.bench.stat.LiveCounters;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The fault-scaling harness: sweeps workloads x targets x threads, prints a progress line and a
 * table, and writes CSV and PNG plots. {@code demo} is a short sweep.
 */
public final class ScaleHarness {
    private List<Workload> workloads = List.of(Workload.PF1, Workload.DISJOINT, Workload.SHARED_TABLE);
    private List<Integer> threads = defaultThreads();
    private List<Target> targets = new ArrayList<>(List.of(Target.parse("SINGLE"), Target.parse("SPLIT_PTE"),
            Target.parse("SPLIT_PTE_PMD"), Target.parse("SPLIT_PTE_PMD+debug"), Target.KERNEL));
    private double warmup = 1;
    private double seconds = 3;
    private Path out = Path.of("bench", "results");
    private boolean csv = true;
    private boolean plot = true;
    private boolean stat = true;
    private int repeat = 1;
    private boolean zero = true;

    private ScaleHarness() {
    }

    private static List<Integer> defaultThreads() {
        int n = Runtime.getRuntime().availableProcessors();
        List<Integer> t = new ArrayList<>(List.of(1));
        if (n > 1) {
            t.add(n);
        }
        t.add(4 * n);
        return t;
    }

    /** {@code scale [options]} and {@code demo [options]}. */
    public static void main(String[] args, boolean demo) throws Exception {
        ScaleHarness h = new ScaleHarness();
        if (demo) {
            h.workloads = List.of(Workload.PF1, Workload.DISJOINT);
            h.threads = List.of(1, 2);
            h.targets = new ArrayList<>(List.of(Target.parse("SINGLE"), Target.parse("SPLIT_PTE_PMD"), Target.KERNEL));
            h.seconds = 2;
        }
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "--help", "-h" -> {
                    usage(System.out);
                    return;
                }
                case "--workloads" -> h.workloads = parseList(args[++i], Workload::parse);
                case "--threads" -> h.threads = parseList(args[++i], ScaleHarness::parseThreads);
                case "--modes" -> h.targets = new ArrayList<>(parseList(args[++i], Target::parse));
                case "--no-kernel" -> h.targets.removeIf(Target::isKernel);
                case "--no-zero" -> h.zero = false;
                case "--repeat" -> h.repeat = parseRepeat(args[++i]);
                case "--warmup" -> h.warmup = parseSeconds(args[++i]);
                case "--seconds" -> h.seconds = parseSeconds(args[++i]);
                case "--out" -> h.out = Path.of(args[++i]);
                case "--no-csv" -> h.csv = false;
                case "--no-plot" -> h.plot = false;
                case "--no-stat" -> h.stat = false;
                default -> {
                    System.err.println("offmm scale: unknown option '" + a + "'");
                    usage(System.err);
                    System.exit(2);
                }
            }
        }
        h.run(System.out);
    }

    private static int parseThreads(String s) {
        int t = Integer.parseInt(s);
        if (t < 1 || t > 256) {
            throw new IllegalArgumentException("threads=" + t + " (expected 1..256)");
        }
        return t;
    }

    private static int parseRepeat(String s) {
        int n = Integer.parseInt(s);
        if (n < 1 || n > 100) {
            throw new IllegalArgumentException("repeat=" + n + " (expected 1..100)");
        }
        return n;
    }

    private static double parseSeconds(String s) {
        double v = Double.parseDouble(s);
        if (!(v >= 0 && v <= 3600)) {
            throw new IllegalArgumentException("seconds=" + s + " (expected 0..3600)");
        }
        return v;
    }

    private static <T> List<T> parseList(String csv, java.util.function.Function<String, T> parse) {
        List<T> out = new ArrayList<>();
        for (String s : csv.split(",")) {
            if (!s.isBlank()) {
                out.add(parse.apply(s.trim()));
            }
        }
        if (out.isEmpty()) {
            throw new IllegalArgumentException("empty list '" + csv + "'");
        }
        return out;
    }

    private static void usage(PrintStream out) {
        out.println("""
                usage: offmm scale [options]      (offmm demo: a short sweep)
                  --workloads LIST   pf1,pf4,disjoint,shared-table,thp,hugetlb   (default pf1,disjoint,shared-table)
                  --threads LIST     e.g. 1,2,8                      (default 1, cores, 4x cores)
                  --modes LIST       SINGLE,SPLIT_PTE,SPLIT_PTE_PMD, each optionally +debug and one of
                                     +noreport (free page reporting off), +hosthuge (MADV_HUGEPAGE),
                                     +cold (free memory reported at once: first touches), and kernel
                  --no-kernel        leave out the host kernel
                  --warmup S         warm-up seconds per point       (default 1)
                  --seconds S        measured seconds per point      (default 3)
                  --repeat N         measure every point N times, the targets interleaved within each
                                     repetition; the table shows medians with their min-max (default 1)
                  --no-zero          leave out the zeroing floor ('zero': the same threads only zeroing
                                     4 KiB frames of a pool of the loop's size)
                  --out DIR          where CSV and PNG go            (default bench/results)
                  --no-csv, --no-plot
                  --no-stat          do not export live counters for 'offmm stat'""");
        for (Workload w : Workload.values()) {
            out.printf("  %-13s %s%n", w.cliName(), w.description());
        }
    }

    private void run(PrintStream out) throws Exception {
        if (zero && !targets.contains(Target.ZERO)) {
            targets.add(Target.ZERO);
        }
        out.printf("offmm fault scaling: %d cores, %s, JDK %s; %.1f s warm-up + %.1f s per point, %d repetition%s%n",
                Runtime.getRuntime().availableProcessors(), System.getProperty("os.arch"),
                Runtime.version(), warmup, seconds, repeat, repeat == 1 ? "" : "s");
        List<Result> results = new ArrayList<>();
        try (LiveCounters live = stat ? LiveCounters.create() : null) {
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
        if (csv) {
            Path file = out().resolve("scale.csv");
            report.writeCsv(file);
            out.println("CSV:  " + file);
        }
        if (plot) {
            for (Path p : Plot.write(report.points(), out())) {
                out.println("plot: " + p);
            }
        }
    }

    private Path out() {
        return out;
    }
}
