package dev.offmm.core;

/** Which page-table locks an address space uses. */
public enum LockMode {
    /** Split when {@code nrCpus >= splitPtlockCpus} (like {@code CONFIG_SPLIT_PTLOCK_CPUS}), else single. */
    AUTO,
    /** Every table under {@code page_table_lock}. */
    SINGLE,
    /** PTE tables carry their own lock; PMD entries under {@code page_table_lock}. */
    SPLIT_PTE,
    /** PTE and PMD tables carry their own locks. */
    SPLIT_PTE_PMD
}
