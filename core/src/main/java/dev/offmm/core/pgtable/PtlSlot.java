package dev.offmm.core.pgtable;

import dev.offmm.core.mm.VmCounters;

/**
 * The out-parameters of the lock helpers (the kernel's {@code spinlock_t **ptlp} and
 * {@code pmd_t *pmdvalp}), and for a fault the counters of the context it runs for. One per
 * thread context, reused, so the helpers allocate nothing.
 */
public final class PtlSlot {
    /** Replaced pages a fault slot collects before it retires them. */
    public static final int REPLACED_BATCH = 64;

    /** The faulting context's own counters (null for a walk that counts nothing). */
    public final VmCounters.Local counts;
    /** The faulting context's reader stripe of the per-VMA locks (see {@code Vma.nextStripe}). */
    public final int stripe;

    /** The lock handle the helper took or looked up. */
    public long ptl;
    /** The PMD value the helper saw (for {@code pteOffsetMapRwNolock} callers to recheck). */
    public long pmdval;
    /**
     * For a fault slot: the pages its copy-on-write faults replaced, whose mapcount and reference
     * drop only after this context's grace period (a context may still read one in an access
     * that began before the fault's shootdown); retired in batches by the fault handler.
     */
    public final long[] replaced;
    /** How many of {@link #replaced} are filled. */
    public int replacedCount;
    /**
     * Set for an unshare fault ({@code FAULT_FLAG_UNSHARE}): a pin needs the page to be this
     * space's alone, so a page shared copy-on-write is copied even for a read.
     */
    public boolean unshare;

    /** A slot for lock helpers only (zap, the walker). */
    public PtlSlot() {
        this(null, 0);
    }

    /** A slot for faults, counting into {@code counts}, reading VMA locks on {@code stripe}. */
    public PtlSlot(VmCounters.Local counts, int stripe) {
        this.counts = counts;
        this.stripe = stripe;
        this.replaced = counts == null ? null : new long[REPLACED_BATCH];
    }
}
