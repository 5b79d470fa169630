package dev.offmm.bench.scale;

/**
 * One measured point.
 *
 * @param workload       the loop
 * @param target         offmm mode or kernel
 * @param threads        threads
 * @param opsPerSecond   pages faulted per second, all threads
 * @param ptlContentions contended acquisitions of {@code page_table_lock} in the window
 * @param pmdContentions contended PMD-lock acquisitions
 * @param pteContentions contended PTE-lock acquisitions
 * @param acquisitions   page-table lock acquisitions of every class
 */
public record Result(Workload workload, Target target, int threads, double opsPerSecond, long ptlContentions,
                     long pmdContentions, long pteContentions, long acquisitions) {

    /** Per thread. */
    public double perThread() {
        return opsPerSecond / threads;
    }
}
