package dev.offmm.bench.scale;

/**
 * One measured point.
 *
 * @param workload       the loop
 * @param target         offmm mode or kernel
 * @param threads        threads
 * @param opsPerSecond   pages faulted per second, all threads (2 MiB pages for thp and hugetlb)
 * @param faults         faults in the measured window
 * @param ptlContentions contended acquisitions of {@code page_table_lock} in the window
 * @param pmdContentions contended PMD-lock acquisitions
 * @param pteContentions contended PTE-lock acquisitions
 * @param acquisitions   page-table lock acquisitions of every class
 */
public record Result(Workload workload, Target target, int threads, double opsPerSecond, long faults, long ptlContentions,
                     long pmdContentions, long pteContentions, long acquisitions) {

    /** Contended acquisitions of every lock class per 1,000 faults. */
    public double contentionsPer1k() {
        return faults == 0 ? 0 : (ptlContentions + pmdContentions + pteContentions) * 1000.0 / faults;
    }

    /** Per thread. */
    public double perThread() {
        return opsPerSecond / threads;
    }
}
