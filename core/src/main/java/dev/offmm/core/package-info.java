/**
 * Address spaces: {@link dev.offmm.core.AddressSpace} (mmap, munmap, mprotect, madvise, faults),
 * {@link dev.offmm.core.Mmu} (a thread's context and software TLB) and {@link dev.offmm.core.PinnedPage}.
 *
 * <h2>Layers</h2>
 * The packages of core import one way only, bottom to top (a test, {@code LayeringTest}, keeps
 * it so):
 * <pre>
 *   event     the JFR events (dev.offmm.*), which every layer above may emit
 *   reclaim   grace periods, the frames an address space allocates under pressure
 *   vma       the VMA array, mmap_lock, per-VMA locks
 *   mm        Mm (mm_struct: data) and its counters
 *   pgtable   entry format, layout and descent, table frames, populate, the lock helpers
 *   walk      walk_page_range and ptdump (MmWalkOps / MmWalk are API)
 *   huge      2 MiB pages: THP and hugetlb faults, huge entries and their split
 *   unmap     mmu_gather, zap, change_protection, free_pgtables
 *   fault     the fault entry (VMA-lock policy) and handle_mm_fault
 *   ops       mmap / munmap / mprotect / madvise, and MmServices, where the services are built
 *   core      AddressSpace, Mmu, PinnedPage: the API
 *   support   an entry point for tests and tools outside this module
 * </pre>
 * A package may import any package below it, never one above. The leaf API types of this package
 * ({@code Prot}, {@code MapFlags}, {@code Advice}, {@code LockMode}, {@code VmConfig}, {@code Thp},
 * {@code VmException}, {@code FaultException}) import nothing from core and may be imported
 * from anywhere. Only {@code dev.offmm.core} and {@code dev.offmm.core.walk} are exported; every
 * other package is internal, its classes public only so that the layers above can use them.
 *
 * <h2>Locks, in the order they nest</h2>
 * <ol>
 *   <li>{@code mmap_lock} (read for faults that could not take a VMA lock and for DONTNEED;
 *       write for mmap, munmap, mprotect and the madvise flag changes);</li>
 *   <li>the per-VMA read lock of a fault;</li>
 *   <li>{@code page_table_lock}: PGD and PUD entries (installing PUD and PMD tables), and every
 *       table in {@link dev.offmm.core.LockMode#SINGLE};</li>
 *   <li>a PMD table's split lock: its entries (installing PTE tables);</li>
 *   <li>a PTE table's split lock: its entries.</li>
 * </ol>
 * The helpers in {@code dev.offmm.core.pgtable.PtlHelpers} decide split versus
 * {@code page_table_lock} in one place; nothing else touches a ptl word.
 *
 * <h2>Memory ordering</h2>
 * Page-table entries are written under their lock with release stores and read either under the
 * lock (plain) or locklessly with acquire loads, so a walker that sees an entry sees the zeroed
 * table or page and the constructed lock it names. The TLB generation is bumped with a volatile
 * read-modify-write after entries are cleared. Every access publishes the generation it validated
 * its translations against (an opaque store into its slot) before it loads the generation
 * (acquire), and publishes IDLE (release) when it ends; the reclaimer, after its bump, makes every
 * running thread execute a full barrier ({@code membarrier}) before it scans the slots, so either
 * it sees the access or the access sees the bump. Accessor names carry their ordering
 * ({@code getAcquire}, {@code setRelease}, {@code getPlain}, {@code ...Volatile}), as in
 * {@code dev.offmm.offheap}.
 *
 * <h2>Lifetimes</h2>
 * Pages and tables cleared by an unmap go to an mmu_gather and are freed, destructors included,
 * once no access that began before the unmap is still running; a context between accesses holds
 * nothing back. The PGD goes the same way at close.
 */
package dev.offmm.core;
