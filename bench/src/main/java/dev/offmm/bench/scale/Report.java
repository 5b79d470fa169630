package dev.offmm.bench.scale;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The results as a table and as CSV: per point the median of its repetitions with their range,
 * the scaling against the same target's 1-thread median, the share of the zeroing floor at the
 * same threads and the scaling against the floor's own, lock contentions, and the offmm/kernel
 * ratio.
 */
final class Report {
    private final List<Summary> points;

    /** The results grouped by point, in the order of the workloads, then of {@code targets}, then of threads. */
    Report(List<Result> results, List<Target> targets) {
        Map<String, List<Result>> by = new LinkedHashMap<>();
        for (Result r : results) {
            by.computeIfAbsent(r.workload() + "/" + r.target().name() + "/" + r.threads(), k -> new ArrayList<>()).add(r);
        }
        List<Summary> out = new ArrayList<>();
        for (List<Result> rs : by.values()) {
            Result f = rs.getFirst();
            out.add(new Summary(f.workload(), f.target(), f.threads(), List.copyOf(rs)));
        }
        List<String> order = targets.stream().map(Target::name).toList();
        out.sort(Comparator.comparingInt((Summary a) -> a.workload().ordinal())
                .thenComparingInt(a -> order.indexOf(a.target().name()))
                .thenComparingInt(Summary::threads));
        this.points = out;
    }

    /** The summaries, for plots. */
    List<Summary> points() {
        return points;
    }

    private Summary find(Workload w, String target, int threads) {
        for (Summary s : points) {
            if (s.workload() == w && s.target().name().equals(target) && s.threads() == threads) {
                return s;
            }
        }
        return null;
    }

    private double median(Workload w, String target, int threads) {
        Summary s = find(w, target, threads);
        return s == null ? 0 : s.median();
    }

    void printTable(PrintStream out) {
        int reps = points.isEmpty() ? 0 : points.stream().mapToInt(p -> p.runs().size()).max().orElse(0);
        out.println();
        out.printf(Locale.ROOT, "%-12s %-20s %7s %10s %-21s %10s %7s %7s %8s %8s %8s %8s %8s %8s%n", "workload", "target",
                "threads", "faults/s", reps > 1 ? "(min-max of " + reps + ")" : "", "per thread", "scaling", "%floor",
                "vsfloor", "ptl-cont", "pmd-cont", "pte-cont", "cont/1k", "vs-kernel");
        Workload last = null;
        for (Summary p : points) {
            if (last != null && last != p.workload()) {
                out.println();
            }
            last = p.workload();
            double one = median(p.workload(), p.target().name(), 1);
            double scaling = one > 0 ? p.median() / one : 0;
            double floor = median(p.workload(), "zero", p.threads());
            double floorOne = median(p.workload(), "zero", 1);
            double floorScaling = floorOne > 0 ? floor / floorOne : 0;
            double k = median(p.workload(), "kernel", p.threads());
            boolean offmm = p.target().isOffmm();
            String name = p.target().isZero() && p.workload().huge() ? "zero-2m" : p.target().name();
            out.printf(Locale.ROOT, "%-12s %-20s %7d %10s %-21s %10s %6.2fx %7s %8s %8s %8s %8s %8s %8s%n",
                    p.workload().cliName(), name, p.threads(), si(p.median()),
                    p.runs().size() > 1 ? "(" + si(p.min()) + "-" + si(p.max()) + ")" : "", si(p.median() / p.threads()),
                    scaling,
                    floor > 0 && !p.target().isZero() ? String.format(Locale.ROOT, "%.0f%%", 100 * p.median() / floor) : "-",
                    floorScaling > 0 && !p.target().isZero() && p.threads() > 1
                            ? String.format(Locale.ROOT, "%.0f%%", 100 * scaling / floorScaling) : "-",
                    offmm ? Long.toString(p.ptlContentions()) : "-", offmm ? Long.toString(p.pmdContentions()) : "-",
                    offmm ? Long.toString(p.pteContentions()) : "-",
                    offmm ? String.format(Locale.ROOT, "%.2f", p.contentionsPer1k()) : "-",
                    !offmm || k == 0 ? "-" : String.format(Locale.ROOT, "%.2fx", p.median() / k));
        }
        out.println();
        out.println("faults/s: median of the repetitions; scaling: against the same target's 1-thread median;"
                + " %floor: share of the zeroing floor's throughput at the same threads; vsfloor: scaling as a share of"
                + " the floor's own scaling; cont/1k: contended page-table lock acquisitions (every class) per 1,000"
                + " faults. thp and hugetlb count 2 MiB faults, against zero-2m: the same threads zeroing 2 MiB frames.");
    }

    void writeCsv(Path file) throws IOException {
        List<String> lines = new ArrayList<>();
        lines.add("workload,target,threads,repetition,faults_per_sec,per_thread,faults,ptl_contentions,pmd_contentions,"
                + "pte_contentions,lock_acquisitions");
        for (Summary p : points) {
            for (int i = 0; i < p.runs().size(); i++) {
                Result r = p.runs().get(i);
                lines.add(String.format(Locale.ROOT, "%s,%s,%d,%d,%.0f,%.0f,%d,%d,%d,%d,%d", r.workload().cliName(),
                        r.target().name(), r.threads(), i + 1, r.opsPerSecond(), r.perThread(), r.faults(), r.ptlContentions(),
                        r.pmdContentions(), r.pteContentions(), r.acquisitions()));
            }
        }
        Files.createDirectories(file.toAbsolutePath().getParent());
        Files.write(file, lines);
    }

    static String si(double v) {
        if (v >= 1e6) {
            return String.format(Locale.ROOT, "%.3fM", v / 1e6);
        }
        if (v >= 1e3) {
            return String.format(Locale.ROOT, "%.1fk", v / 1e3);
        }
        return String.format(Locale.ROOT, "%.0f", v);
    }
}
