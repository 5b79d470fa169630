package dev.offmm.core.pgtable;

/**
 * The out-parameters of the lock helpers (the kernel's {@code spinlock_t **ptlp} and
 * {@code pmd_t *pmdvalp}). One per thread context, reused, so the helpers allocate nothing.
 */
public final class PtlSlot {
    /** The lock handle the helper took or looked up. */
    public long ptl;
    /** The PMD value the helper saw (for {@code pteOffsetMapRwNolock} callers to recheck). */
    public long pmdval;
}
