package dev.offmm.core.unmap;

import dev.offmm.core.VmException;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.mm.VmCounters;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PtlHelpers;
import dev.offmm.core.pgtable.Pte;
import dev.offmm.core.pgtable.TableAlloc;
import dev.offmm.core.reclaim.Reclaimer;
import dev.offmm.core.vma.Vma;
import dev.offmm.offheap.frame.FrameAllocator;
import dev.offmm.offheap.host.Backoff;
import dev.offmm.offheap.lock.PtLocks;
import dev.offmm.offheap.page.MemMap;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.Lock;

/**
 * PTE tables shared between address spaces after a fork, as the 2002 page-table sharing RFC
 * (Daniel Phillips, with Linus Torvalds) describes them, and their unsharing.
 *
 * <p><b>Shape.</b> A shared table is named by a PMD entry of every space that maps it; each of
 * those entries lacks {@code W} ({@link Pte#mkSharedTable}), which write-protects every leaf below
 * it, as a level's W bit does on x86. The table's struct page carries the share count (the other
 * spaces mapping it, 0 for a private table) in its own word ({@link MemMap#ptShareCountVolatile}),
 * never in the refcount. The pages it maps count one mapping and one reference for the table,
 * however many spaces share it; that is why a fork that shares a table touches no page.
 *
 * <p><b>The one lock.</b> The table's split PTE lock guards its entries and its share count, for
 * every space: the RFC's {@code page_table_share_lock}, which "can turn into a lock on the page
 * table itself". So sharing needs split PTE locks; in {@code SINGLE} mode each space's entries
 * are guarded by its own {@code page_table_lock} and fork copies every table instead.
 *
 * <p><b>Unsharing.</b> No space changes a shared table. Before any change in a range (a fault,
 * munmap, mprotect, DONTNEED, a collapse) the space calls {@link #unshareRange} with mmap_lock held
 * for write; it write-locks every VMA overlapping the 2 MiB hull, so that no fault of this space
 * holds a table it read before the change, and for each shared table under its lock:
 * <ul>
 *   <li>if the share count is 0, this space is its last user and keeps it: its PMD entry gets
 *       W back and the table its owner stamp (the RFC's {@code put_page_testzero} reaching zero);
 *   <li>else, if the range covers the table and the caller drops (munmap), the PMD entry is
 *       cleared;</li>
 *   <li>else the entries are copied into a table allocated before the lock, every page's
 *       mapcount and refcount raised, the copy and the source both write-protected, and the PMD
 *       entry swapped to the copy.</li>
 * </ul>
 * In the last two cases the TLB generation is bumped and this space's contexts are waited for
 * (an access that began earlier may still walk the table), and only then, still under the lock,
 * is the share count decremented. So a space that sees the count at 0 knows no other space can
 * reach the table any more, and of two spaces unsharing at once exactly one copies: the second
 * waits for the lock and finds itself the last user. The table is freed, destructor and all, only
 * by its last user, through that user's ordinary unmap after its own grace period.
 *
 * <p>Accounting: every space counts a table it maps (shared or not) in its page-table bytes, its
 * frames held (the table and the pages it maps) and its RSS, and its lock in its live locks, so
 * each space's {@code check_mm} balances whatever the order of unsharing and close.
 */
public final class TableShare {
    private final Mm mm;
    private final Entries entries;
    private final PtlHelpers ptl;
    private final TableAlloc tables;
    private final MemMap map;
    private final PtLocks ptLocks;
    private final Reclaimer reclaimer;
    private final boolean splitPte;

    /** The shared tables of {@code mm}. */
    public TableShare(Mm mm, Entries entries, PtlHelpers ptl, TableAlloc tables, MemMap map, PtLocks ptLocks,
                      Reclaimer reclaimer, boolean splitPte) {
        this.mm = mm;
        this.entries = entries;
        this.ptl = ptl;
        this.tables = tables;
        this.map = map;
        this.ptLocks = ptLocks;
        this.reclaimer = reclaimer;
        this.splitPte = splitPte;
    }

    /** Whether this space may share PTE tables (it has split PTE locks). */
    public boolean canShare() {
        return splitPte;
    }

    /**
     * Whether a PMD entry in the 2 MiB hull of {@code [start, end)} names a shared table
     * (acquire loads). The caller holds mmap_lock; nothing but fork makes a table shared, and
     * fork holds it for write.
     */
    public boolean anyShared(long start, long end) {
        if (!splitPte || !mm.mayShare()) {
            return false;
        }
        long addr = start & ~Entries.PMD_MASK;
        while (addr < end && addr >= 0) {
            long pmdE = entries.lookupPmd(mm.pgd(), addr);
            if (pmdE < 0) {
                addr = Entries.addrEnd(addr, Entries.missingLevel(pmdE), Long.MAX_VALUE);
                continue;
            }
            if (Pte.sharedTable(entries.getAcquire(pmdE))) {
                return true;
            }
            addr += Entries.PMD_SIZE;
        }
        return false;
    }

    /**
     * Makes every table in the 2 MiB hull of {@code [start, end)} private to this space, as the
     * class comment says; with {@code drop}, a table wholly inside {@code [start, end)} that
     * others still share is let go of instead of copied. Caller holds mmap_lock for write.
     *
     * @throws VmException ENOMEM if a copy found no frame (the tables done so far stay done,
     *                     which no one can tell from before)
     */
    public void unshareRange(long start, long end, boolean drop) {
        if (!anyShared(start, end)) {
            return;
        }
        long lo = start & ~Entries.PMD_MASK;
        long hi = Math.min((end + Entries.PMD_MASK) & ~Entries.PMD_MASK, Entries.USER_END);
        List<Vma> hull = mm.vmas().overlapping(lo, hi);
        // Faults of this space in the hull finish now, and new ones wait for mmap_lock, so no
        // thread of this space holds a table pointer it read before the PMD entries change.
        for (Vma v : hull) {
            v.writeLockAndDetach();
        }
        VmCounters.Local counts = mm.counters().local();
        try {
            for (long addr = lo; addr < hi; addr += Entries.PMD_SIZE) {
                long pmdE = entries.lookupPmd(mm.pgd(), addr);
                if (pmdE >= 0 && Pte.sharedTable(entries.getAcquire(pmdE))) {
                    boolean whole = drop && addr >= start && addr + Entries.PMD_SIZE <= end;
                    unshareOne(pmdE, whole, counts);
                }
            }
        } finally {
            counts.fold();
            List<Vma> fresh = new ArrayList<>(hull.size());
            for (Vma v : hull) {
                fresh.add(v.slice(v.start, v.end));
            }
            if (!hull.isEmpty()) {
                mm.vmas().replace(hull.getFirst().start, hull.getLast().end, fresh);
            }
        }
    }

    /**
     * {@link #unshareRange} for a fault at {@code va} that found its table shared: takes
     * mmap_lock for write (the fault holds no lock now) and unshares the table of {@code va}.
     *
     * @return false if no frame was found for the copy
     */
    public boolean unshareForFault(long va) {
        Lock w = mm.vmas().mmapLock().writeLock();
        w.lock();
        try {
            mm.ensureOpen();
            unshareRange(va, va + 1, false);
            return true;
        } catch (VmException e) {
            return false;
        } finally {
            w.unlock();
        }
    }

    /** Unshares the shared table at {@code pmdE}: keeps, drops or copies it. */
    private void unshareOne(long pmdE, boolean drop, VmCounters.Local counts) {
        long pmd = entries.getAcquire(pmdE);
        long table = Pte.pfn(pmd);
        // Allocated and constructed before any lock; unused if this space turns out to keep or drop it.
        long copy = drop ? FrameAllocator.NO_FRAME : tables.allocTable(Entries.PTE, counts);
        if (!drop && copy == FrameAllocator.NO_FRAME) {
            throw new VmException(VmException.Code.ENOMEM, "no frame to unshare the page table at 0x"
                    + Long.toHexString(pmdE));
        }
        boolean used = false;
        long pmdLock = ptl.pmdLock(Entries.tableOf(pmdE));
        long tableLock = ptl.pteLockptr(pmd);
        ptl.lockPte(tableLock);
        boolean pmdLocked = true;
        try {
            if (entries.getPlain(pmdE) != pmd) {
                throw new IllegalStateException("shared table entry at 0x" + Long.toHexString(pmdE)
                        + " changed under mmap_lock held for write");
            }
            if (map.ptShareCountVolatile(table) == 0) {
                // The last user: the table is this space's alone, as it is.
                tables.adopt(table);
                entries.setRelease(pmdE, Pte.mkTable(table));
                // Contexts cache PMD entries (the walk cache): drop the read-only one.
                mm.flushTlb();
                counts.increment(VmCounters.UNSHARE_KEPT);
                counts.add(VmCounters.SHARED_TABLES, -1);
                return;
            }
            int pages = drop ? ownedFrames(table) : copyInto(table, copy);
            used = !drop;
            // Release: the copy's entries before the entry that names it.
            entries.setRelease(pmdE, drop ? 0 : Pte.mkTable(copy));
            long gen = mm.flushTlb();
            ptl.unlock(pmdLock);
            pmdLocked = false;
            // An access of this space that began before the bump may still walk the table: wait
            // for it before the count says the table is no longer this space's to read.
            awaitGeneration(gen);
            map.addAndGetPtShareCount(table, -1);
            tables.unlinked(Entries.PTE);
            if (splitPte) {
                ptLocks.accountShared(-1);
            }
            counts.add(VmCounters.FRAMES_HELD, drop ? -1 - pages : -1);
            if (drop) {
                counts.add(VmCounters.RSS, -pages);
            }
            counts.increment(drop ? VmCounters.UNSHARE_DROPPED : VmCounters.UNSHARE_COPIED);
            counts.add(VmCounters.SHARED_TABLES, -1);
        } finally {
            ptl.unlock(tableLock);
            if (pmdLocked) {
                ptl.unlock(pmdLock);
            }
            if (!used && copy != FrameAllocator.NO_FRAME) {
                tables.freeTable(copy, Entries.PTE);
            }
        }
    }

    /**
     * Copies the entries of shared table {@code table} into {@code copy}, raising each page's
     * mapcount and refcount, and write-protects them in both: the pages are now mapped twice.
     * The source's other users reach it only through read-only PMD entries and hold no writable
     * translation of it, so clearing its W bits needs no shootdown. Returns the pages copied.
     */
    private int copyInto(long table, long copy) {
        int pages = 0;
        for (int i = 0; i < Entries.PTRS_PER_TABLE; i++) {
            long src = Entries.entry(table, i);
            long e = entries.getPlain(src);
            if (Pte.none(e)) {
                continue;
            }
            if (Pte.ownsFrame(e)) {
                long pfn = Pte.pfn(e);
                map.addAndGetMapcount(pfn, 1);
                map.addAndGetRefcount(pfn, 1);
                pages++;
            }
            long ro = Pte.wrprotect(e);
            if (ro != e) {
                entries.setRelease(src, ro);
            }
            // Plain: the copy is published by the release store of the PMD entry.
            entries.setPlain(Entries.entry(copy, i), ro);
        }
        return pages;
    }

    /** Pages (frames, not the zero page) that table {@code table} maps. */
    public int ownedFrames(long table) {
        int pages = 0;
        for (int i = 0; i < Entries.PTRS_PER_TABLE; i++) {
            if (Pte.ownsFrame(entries.getPlain(Entries.entry(table, i)))) {
                pages++;
            }
        }
        return pages;
    }

    /**
     * Fork: makes the PTE table at this (the parent's) PMD entry {@code pmdE} shared, and returns
     * the entry the child's PMD gets; or 0 if the table maps a pinned page, which the child must
     * get a copy of, so the table is copied instead. Caller holds mmap_lock for write with every
     * VMA write-locked, and bumps the TLB generation before it lets go of them.
     *
     * @param pages out: {@code pages[0]} is set to the pages the table maps
     */
    public long share(long pmdE, int[] pages) {
        long pmdLock = ptl.pmdLock(Entries.tableOf(pmdE));
        try {
            long pmd = entries.getPlain(pmdE);
            long table = Pte.pfn(pmd);
            long tableLock = ptl.pteLockptr(pmd);
            ptl.lockPte(tableLock);
            try {
                int n = 0;
                for (int i = 0; i < Entries.PTRS_PER_TABLE; i++) {
                    long e = entries.getPlain(Entries.entry(table, i));
                    if (Pte.ownsFrame(e)) {
                        long pfn = Pte.pfn(e);
                        if (map.refcountVolatile(pfn) != map.mapcountVolatile(pfn)) {
                            return 0;
                        }
                        n++;
                    }
                }
                if (!Pte.sharedTable(pmd)) {
                    entries.setRelease(pmdE, Pte.mkSharedTable(table));
                    mm.counters().increment(VmCounters.SHARED_TABLES);
                }
                map.addAndGetPtShareCount(table, 1);
                pages[0] = n;
                return Pte.mkSharedTable(table);
            } finally {
                ptl.unlock(tableLock);
            }
        } finally {
            ptl.unlock(pmdLock);
        }
    }

    /**
     * The child's half of {@link #share}: counts the table it now maps, with its lock and its
     * {@code pages} pages, as its own (see the accounting note above).
     */
    public void adoptShared(int pages, VmCounters.Local counts) {
        counts.increment(VmCounters.PTE_TABLES);
        counts.increment(VmCounters.SHARED_TABLES);
        counts.add(VmCounters.FRAMES_HELD, 1 + pages);
        counts.add(VmCounters.RSS, pages);
        if (splitPte) {
            ptLocks.accountShared(1);
        }
    }

    /** Waits for this space's accesses that began before generation {@code gen}; they take no lock. */
    private void awaitGeneration(long gen) {
        int attempt = 0;
        while (reclaimer.minActive() < gen) {
            attempt = Backoff.idle(attempt);
        }
    }
}
