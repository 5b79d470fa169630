package dev.offmm.core;

import dev.offmm.offheap.LockClass;

import java.util.Map;

/**
 * A snapshot of an address space's counters (racy while threads run).
 *
 * @param rssPages           resident data pages
 * @param pteTableBytes      bytes of PTE tables
 * @param pmdTableBytes      bytes of PMD tables
 * @param pudTableBytes      bytes of PUD tables (the PGD is not counted, as in the kernel)
 * @param vmaCount           VMAs
 * @param faults             resolved and failed faults by kind, in this order: zero, anon, cow,
 *                           reuse, spurious, maperr, accerr, oom, mmapLockFallback, thp (write faults that
 *                           mapped a transparent huge page), hugetlb, thpFallback (THP-eligible faults that
 *                           mapped 4 KiB pages for want of a 2 MiB frame), cowCopy (write faults that copied a
 *                           page shared copy-on-write after a fork; {@code reuse} counts those that found
 *                           themselves its last mapping and wrote it in place)
 * @param lockAcquisitions   page-table lock acquisitions per lock class, counted with debug locks
 *                           only (as {@code CONFIG_LOCK_STAT}): 0 with inline locks
 * @param lockContentions    contended acquisitions per lock class
 * @param tlbFlushes         TLB generation bumps
 * @param tableRacesLost     tables built and destroyed because another thread installed one first
 * @param pendingFreeFrames  frames waiting for a grace period before they are freed
 * @param pagesAllocated     data pages allocated by faults, ever
 * @param pagesFreed         data pages released after their grace period, ever
 * @param tablesAllocated    page tables allocated, ever (the PGD aside)
 * @param tablesFreed        page tables destroyed and freed, ever
 * @param gracePeriods       unmap batches released after their grace period, ever
 * @param hugePages          2 MiB entries mapped now (THP and hugetlb; each also counts 512 in {@code rssPages})
 * @param thpSplits          huge entries split into PTE tables, ever (partial munmap, mprotect, DONTNEED)
 * @param thpCollapses       PTE tables collapsed into huge entries, ever ({@link Advice#COLLAPSE})
 * @param sharedTables       PTE tables this space maps now that a fork shares with another space (or did, until
 *                           this space changes them)
 * @param unshares           shared tables this space stopped sharing, ever: {@code copied} (to change them),
 *                           {@code kept} (it was their last user: no copy) and {@code dropped} (unmapped while
 *                           others still shared them)
 * @param forks              forks of this space, ever
 * @param forkPinnedCopies   pages copied for a child at fork because they were pinned, ever
 */
public record VmStats(long rssPages, long pteTableBytes, long pmdTableBytes, long pudTableBytes, long vmaCount,
                      Map<String, Long> faults, Map<LockClass, Long> lockAcquisitions,
                      Map<LockClass, Long> lockContentions, long tlbFlushes, long tableRacesLost,
                      long pendingFreeFrames, long pagesAllocated, long pagesFreed, long tablesAllocated,
                      long tablesFreed, long gracePeriods, long hugePages, long thpSplits, long thpCollapses,
                      long sharedTables, Map<String, Long> unshares, long forks, long forkPinnedCopies) {

    /** {@return the page-table bytes of the PTE and PMD levels (and PUD), the kernel's {@code mm_pgtables_bytes}} */
    public long pageTableBytes() {
        return pteTableBytes + pmdTableBytes + pudTableBytes;
    }

    /**
     * Faults of one kind.
     *
     * @param kind a key of {@link #faults()}, e.g. {@code "cowCopy"}
     * @return the count, 0 if none
     */
    public long faults(String kind) {
        return faults.getOrDefault(kind, 0L);
    }
}
