package dev.offmm.core.mm;

import dev.offmm.offheap.LockClass;

import java.util.concurrent.atomic.LongAdder;

/**
 * The counters of one address space, read through {@code AddressSpace.stats()}. Each is a
 * {@link LongAdder}, striped per thread under contention, so counting on the fault path never
 * becomes the bottleneck it measures.
 */
public final class VmCounters {
    /** Resident data pages (not the zero page). */
    public final LongAdder rssPages = new LongAdder();
    /** PTE tables allocated and not yet freed. */
    public final LongAdder pteTables = new LongAdder();
    /** PMD tables allocated and not yet freed. */
    public final LongAdder pmdTables = new LongAdder();
    /** PUD tables allocated and not yet freed. */
    public final LongAdder pudTables = new LongAdder();
    /** Every frame this address space holds: data pages, tables of every level, the PGD. */
    public final LongAdder framesHeld = new LongAdder();
    /** Data pages allocated by faults. */
    public final LongAdder pagesAllocated = new LongAdder();
    /** Data pages released by this address space after their grace period. */
    public final LongAdder pagesFreed = new LongAdder();
    /** Page tables allocated (every level but the PGD). */
    public final LongAdder tablesAllocated = new LongAdder();
    /** Page tables destroyed and freed. */
    public final LongAdder tablesFreed = new LongAdder();
    /** Batches released after their grace period. */
    public final LongAdder gracePeriods = new LongAdder();
    /** Read faults that mapped the zero page. */
    public final LongAdder faultZero = new LongAdder();
    /** Write faults that allocated a fresh page. */
    public final LongAdder faultAnon = new LongAdder();
    /** Write faults that copied (from the zero page). */
    public final LongAdder faultCow = new LongAdder();
    /** Write faults that made an exclusive page writable again. */
    public final LongAdder faultReuse = new LongAdder();
    /** Faults that found the entry already good (another thread won). */
    public final LongAdder faultSpurious = new LongAdder();
    /** Faults with no mapping. */
    public final LongAdder faultMapErr = new LongAdder();
    /** Faults with the wrong protection. */
    public final LongAdder faultAccErr = new LongAdder();
    /** Faults that ran out of memory. */
    public final LongAdder faultOom = new LongAdder();
    /** Faults that fell back from the per-VMA lock to mmap_lock. */
    public final LongAdder faultMmapLockFallback = new LongAdder();
    /** TLB generation bumps (shootdowns). */
    public final LongAdder tlbFlushes = new LongAdder();
    /** Populate races lost: a table built and destroyed because another thread installed one. */
    public final LongAdder tableRacesLost = new LongAdder();
    /** Lock acquisitions per {@link LockClass}. */
    public final LongAdder[] lockAcquisitions = adders(LockClass.values().length);
    /** Contended lock acquisitions per {@link LockClass}. */
    public final LongAdder[] lockContentions = adders(LockClass.values().length);

    private static LongAdder[] adders(int n) {
        LongAdder[] a = new LongAdder[n];
        for (int i = 0; i < n; i++) {
            a[i] = new LongAdder();
        }
        return a;
    }
}
