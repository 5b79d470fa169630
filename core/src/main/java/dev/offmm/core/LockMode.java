package dev.offmm.core;

/** Which page-table locks an address space uses. */
public enum LockMode {
    /**
     * {@link #SPLIT_PTE_PMD} when {@code nrCpus >= splitPtlockCpus} (default 2), else
     * {@link #SINGLE}. The kernel compares {@code CONFIG_SPLIT_PTLOCK_CPUS} (4) with
     * {@code NR_CPUS}, a build-time maximum far above it, so a kernel runs split locks on any
     * machine; the inline lock word costs no memory here, so AUTO splits whenever there is more
     * than one CPU to contend.
     */
    AUTO,
    /** Every table under {@code page_table_lock}. */
    SINGLE,
    /** PTE tables carry their own lock; PMD entries under {@code page_table_lock}. */
    SPLIT_PTE,
    /** PTE and PMD tables carry their own locks. */
    SPLIT_PTE_PMD
}
