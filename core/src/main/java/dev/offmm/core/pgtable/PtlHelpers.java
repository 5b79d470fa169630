package dev.offmm.core.pgtable;

import dev.offmm.core.mm.VmCounters;
import dev.offmm.offheap.LockClass;
import dev.offmm.offheap.lock.PtLocks;

/**
 * The page-table lock helper family ({@code include/linux/mm.h}). The one place that decides
 * split versus {@code page_table_lock}: with split PTE locks a PTE table's lock is its own ptl
 * word, with split PMD locks likewise for a PMD table; otherwise every helper returns
 * {@code page_table_lock}. Locks are named by handles (see {@link PtLocks}); helpers that lock
 * return the handle they took, and the caller passes it back to {@link #unlock} or
 * {@link #pteUnmapUnlock}.
 *
 * <p>Lock order: mmap_lock, then VMA lock, then {@code page_table_lock}, then a PMD lock, then a
 * PTE lock. In single mode the PMD and PTE "locks" are {@code page_table_lock} itself, so code
 * never holds two of them at once.
 */
public final class PtlHelpers {
    private final PtLocks locks;
    private final Entries entries;
    private final VmCounters counters;
    private final boolean splitPte;
    private final boolean splitPmd;
    private final long mmLock;
    private final boolean debug;

    /**
     * The helpers of one address space: its tables' locks are in {@code locks}, its
     * {@code page_table_lock} is the handle {@code pageTableLock}, and {@code splitPte} /
     * {@code splitPmd} say which tables carry their own lock.
     */
    public PtlHelpers(PtLocks locks, Entries entries, VmCounters counters, boolean splitPte, boolean splitPmd,
                      long pageTableLock) {
        this.locks = locks;
        this.entries = entries;
        this.counters = counters;
        this.splitPte = splitPte;
        this.splitPmd = splitPmd;
        this.mmLock = pageTableLock;
        this.debug = locks.debug();
    }

    /**
     * Takes a lock. Statistics stay off the inline hot path, as {@code CONFIG_LOCK_STAT} keeps
     * them out of a production kernel: a contended acquisition is counted (it waited anyway), an
     * uncontended one only with debug locks.
     */
    private void lock(long handle, LockClass cls) {
        if (locks.lock(handle)) {
            counters.increment(VmCounters.LOCK_CONTENTIONS + cls.ordinal());
        }
        if (debug) {
            counters.increment(VmCounters.LOCK_ACQUISITIONS + cls.ordinal());
        }
    }

    /** Releases a lock taken by any helper. */
    public void unlock(long handle) {
        locks.unlock(handle);
    }

    /** Takes {@code mm->page_table_lock} and returns it. */
    public long pageTableLock() {
        lock(mmLock, LockClass.PAGE_TABLE_LOCK);
        return mmLock;
    }

    /** The class of PTE-table locks in this mode. */
    public LockClass pteClass() {
        return splitPte ? LockClass.PTE : LockClass.PAGE_TABLE_LOCK;
    }

    /** The class of PMD-table locks in this mode. */
    public LockClass pmdClass() {
        return splitPmd ? LockClass.PMD : LockClass.PAGE_TABLE_LOCK;
    }

    /**
     * {@code pte_lockptr}: the lock of the PTE table named by the PMD value {@code pmdval}
     * (present, not huge). Takes nothing.
     */
    public long pteLockptr(long pmdval) {
        return splitPte ? locks.ptlockPtr(Pte.pfn(pmdval)) : mmLock;
    }

    /** {@code pmd_lockptr}: the lock guarding the entries of PMD table {@code pmdTablePfn}. Takes nothing. */
    public long pmdLockptr(long pmdTablePfn) {
        return splitPmd ? locks.ptlockPtr(pmdTablePfn) : mmLock;
    }

    /** {@code pmd_lock}: takes and returns the lock of PMD table {@code pmdTablePfn}. */
    public long pmdLock(long pmdTablePfn) {
        long ptl = pmdLockptr(pmdTablePfn);
        lock(ptl, pmdClass());
        return ptl;
    }

    /**
     * {@code huge_pte_lock} for a 2 MiB entry: the PMD split lock of the table holding it
     * ({@code page_table_lock} when PMD locks are not split). Takes and returns it.
     */
    public long hugePteLock(long pmdEntry) {
        return pmdLock(Entries.tableOf(pmdEntry));
    }

    /**
     * {@code lockdep_assert_held} for a huge entry at {@code pmdEntry}: the lock
     * {@link #hugePteLock} names for it must be held (by this thread with debug locks, by anyone
     * with inline ones). Every store to a huge entry checks it, so one path taking another lock
     * for the same entry (the kernel's 2024 hugetlb bug) fails the first time it runs.
     *
     * @throws IllegalStateException if it is not held
     */
    public void assertHugeLocked(long pmdEntry) {
        long lock = pmdLockptr(Entries.tableOf(pmdEntry));
        if (!locks.isHeld(lock)) {
            throw new IllegalStateException("huge PMD entry at 0x" + Long.toHexString(pmdEntry)
                    + " changed without the lock hugePteLock names (" + pmdClass() + ")");
        }
    }

    /**
     * {@code pte_offset_map_lock}: maps the PTE for {@code va} below the PMD entry at
     * {@code pmdEntry} and takes its table's lock.
     *
     * <p>Enters with the VMA read-locked (or mmap_lock held) and no page-table lock. Returns the
     * PTE's address with the PTE lock held and stored in {@code slot.ptl}, or -1 with no lock
     * held if the PMD entry is empty or huge. After locking it rechecks that the PMD entry still
     * names the same table, and retries if not (the table could have been freed or replaced
     * between the lockless load and the lock).
     */
    public long pteOffsetMapLock(long pmdEntry, long va, PtlSlot slot) {
        while (true) {
            long pmdval = entries.getAcquire(pmdEntry);
            if (!Pte.table(pmdval)) {
                return -1;
            }
            long ptl = pteLockptr(pmdval);
            lock(ptl, pteClass());
            if (entries.getAcquire(pmdEntry) == pmdval) {
                slot.ptl = ptl;
                slot.pmdval = pmdval;
                return Entries.pteOffset(pmdval, va);
            }
            unlock(ptl);
        }
    }

    /** {@code pte_unmap_unlock}: releases the lock {@link #pteOffsetMapLock} returned in its slot. */
    public void pteUnmapUnlock(long pte, long ptl) {
        unlock(ptl);
    }

    /**
     * {@code pte_offset_map_ro_nolock}: the PTE's address and (in {@code slot.ptl}) its lock,
     * without taking it, for a caller that only reads the PTE locklessly. Returns -1 if the PMD
     * entry is empty or huge. The caller must keep the table alive (VMA or mmap lock held).
     */
    public long pteOffsetMapRoNolock(long pmdEntry, long va, PtlSlot slot) {
        long pmdval = entries.getAcquire(pmdEntry);
        if (!Pte.table(pmdval)) {
            return -1;
        }
        slot.ptl = pteLockptr(pmdval);
        slot.pmdval = pmdval;
        return Entries.pteOffset(pmdval, va);
    }

    /**
     * {@code pte_offset_map_rw_nolock}: as {@link #pteOffsetMapRoNolock}, and also returns the PMD
     * value seen in {@code slot.pmdval}. A caller that then takes {@code slot.ptl} to modify the
     * PTE must recheck that the PMD entry still equals {@code slot.pmdval} under the lock, and
     * retry if not.
     */
    public long pteOffsetMapRwNolock(long pmdEntry, long va, PtlSlot slot) {
        return pteOffsetMapRoNolock(pmdEntry, va, slot);
    }

    /** Takes the lock {@code ptl} of a PTE table (after a *Nolock helper). */
    public void lockPte(long ptl) {
        lock(ptl, pteClass());
    }
}
