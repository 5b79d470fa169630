package dev.offmm.bench.scale;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The results as a table (with the linear-scaling column and the offmm/kernel ratio) and as CSV.
 * "linear" is the best 1-thread figure of the same workload and target times the threads.
 */
final class Report {
    private final List<Result> results;

    Report(List<Result> results) {
        this.results = List.copyOf(results);
    }

    private double oneThread(Result r) {
        double best = 0;
        for (Result o : results) {
            if (o.workload() == r.workload() && o.target().equals(r.target()) && o.threads() == 1) {
                best = Math.max(best, o.opsPerSecond());
            }
        }
        return best;
    }

    private double kernel(Result r) {
        for (Result o : results) {
            if (o.workload() == r.workload() && o.target().isKernel() && o.threads() == r.threads()) {
                return o.opsPerSecond();
            }
        }
        return 0;
    }

    void printTable(PrintStream out) {
        out.println();
        out.printf(Locale.ROOT, "%-12s %-20s %7s %12s %12s %12s %7s %9s %9s %9s %8s%n", "workload", "target", "threads",
                "faults/s", "per thread", "linear", "scaling", "ptl-cont", "pmd-cont", "pte-cont", "vs-kernel");
        Workload last = null;
        for (Result r : results) {
            if (last != null && last != r.workload()) {
                out.println();
            }
            last = r.workload();
            double linear = oneThread(r) * r.threads();
            double k = kernel(r);
            out.printf(Locale.ROOT, "%-12s %-20s %7d %12s %12s %12s %6.0f%% %9s %9s %9s %8s%n",
                    r.workload().cliName(), r.target().name(), r.threads(), si(r.opsPerSecond()), si(r.perThread()),
                    linear > 0 ? si(linear) : "-", linear > 0 ? 100 * r.opsPerSecond() / linear : 0,
                    r.target().isKernel() ? "-" : Long.toString(r.ptlContentions()),
                    r.target().isKernel() ? "-" : Long.toString(r.pmdContentions()),
                    r.target().isKernel() ? "-" : Long.toString(r.pteContentions()),
                    r.target().isKernel() || k == 0 ? "-" : String.format(Locale.ROOT, "%.2fx", r.opsPerSecond() / k));
        }
        out.println();
    }

    void writeCsv(Path file) throws IOException {
        List<String> lines = new ArrayList<>();
        lines.add("workload,target,threads,faults_per_sec,per_thread,linear,ptl_contentions,pmd_contentions,"
                + "pte_contentions,lock_acquisitions,vs_kernel");
        for (Result r : results) {
            double k = kernel(r);
            lines.add(String.format(Locale.ROOT, "%s,%s,%d,%.0f,%.0f,%.0f,%d,%d,%d,%d,%s", r.workload().cliName(),
                    r.target().name(), r.threads(), r.opsPerSecond(), r.perThread(), oneThread(r) * r.threads(),
                    r.ptlContentions(), r.pmdContentions(), r.pteContentions(), r.acquisitions(),
                    r.target().isKernel() || k == 0 ? "" : String.format(Locale.ROOT, "%.3f", r.opsPerSecond() / k)));
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
