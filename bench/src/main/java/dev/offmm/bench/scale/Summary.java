package dev.offmm.bench.scale;

import java.util.Arrays;
import java.util.List;

/**
 * The repetitions of one (workload, target, threads) point: the median and the range of their
 * throughputs, and the median of their lock contentions.
 *
 * @param workload the loop
 * @param target   offmm mode, kernel or the zeroing floor
 * @param threads  threads
 * @param runs     every repetition, in the order measured
 */
record Summary(Workload workload, Target target, int threads, List<Result> runs) {
    double median() {
        return medianOf(runs.stream().mapToDouble(Result::opsPerSecond).toArray());
    }

    double min() {
        return runs.stream().mapToDouble(Result::opsPerSecond).min().orElse(0);
    }

    double max() {
        return runs.stream().mapToDouble(Result::opsPerSecond).max().orElse(0);
    }

    long ptlContentions() {
        return (long) medianOf(runs.stream().mapToDouble(Result::ptlContentions).toArray());
    }

    long pmdContentions() {
        return (long) medianOf(runs.stream().mapToDouble(Result::pmdContentions).toArray());
    }

    long pteContentions() {
        return (long) medianOf(runs.stream().mapToDouble(Result::pteContentions).toArray());
    }

    double contentionsPer1k() {
        return medianOf(runs.stream().mapToDouble(Result::contentionsPer1k).toArray());
    }

    private static double medianOf(double[] v) {
        if (v.length == 0) {
            return 0;
        }
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }
}
