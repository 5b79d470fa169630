package dev.offmm.core.unmap;

import dev.offmm.core.VmException;
import dev.offmm.core.event.GracePeriodWaitEvent;
import dev.offmm.core.event.OomEvent;
import dev.offmm.core.event.TableUnshareEvent;
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
 *       W back and the table its owner stamp;</li>
 *   <li>else, if the range covers the table and the caller drops (munmap), the PMD entry is
 *       cleared;</li>
 *   <li>else the entries are copied into a table allocated before the lock, every page's
 *       mapcount and refcount raised, the copy and the source both write-protected, and the PMD
 *       entry swapped to the copy.</li>
 * </ul>
 * Then the TLB generation is bumped and this space's contexts are waited for (an access that
 * began earlier may still walk the table), and only then does the share count drop: under the
 * lock for a copy, so that of two spaces unsharing at once exactly one copies (the second waits
 * for the lock and finds itself the last user); after one wait for all of them for drops. A drop
 * decided while another space still shared the table may so take the count to -1, and whichever
 * space does frees the table and its pages (the RFC's {@code put_page_testzero}). Otherwise a
 * table is freed, destructor and all, by its last user, through its ordinary unmap.
 *
 * <p>Accounting: every space counts a table it maps (shared or not) in its page-table bytes, its
 * frames held (the table and the pages it maps) and its RSS, and its lock in its live locks, so
 * each space's {@code check_mm} balances whatever the order of unsharing and close.
 */
public final class TableShare {
    /** {@code tryUnshare}: kept or dropped; copied (the copy table is used); a copy table is needed first. */
    private static final int DONE = 0;
    private static final int COPIED = 1;
    private static final int NEED_COPY = 2;

    private final Mm mm;
    private final Entries entries;
    private final PtlHelpers ptl;
    private final TableAlloc tables;
    private final MemMap map;
    private final PtLocks ptLocks;
    private final Reclaimer reclaimer;
    private final boolean splitPte;
    private final Zap zap;

    /** The shared tables of {@code mm}; a table the last sharers let go of is freed through {@code zap}'s gathers. */
    public TableShare(Mm mm, Entries entries, PtlHelpers ptl, TableAlloc tables, MemMap map, PtLocks ptLocks,
                      Reclaimer reclaimer, boolean splitPte, Zap zap) {
        this.mm = mm;
        this.zap = zap;
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
        return splitPte && mm.mayShare() && nextShared(start, end) >= 0;
    }

    /** The first 2 MiB boundary from {@code addr} below {@code end} whose PMD entry names a shared table, or -1. */
    private long nextShared(long addr, long end) {
        addr &= ~Entries.PMD_MASK;
        while (addr < end && addr >= 0) {
            long pmdE = entries.lookupPmd(mm.pgd(), addr);
            if (pmdE < 0) {
                addr = Entries.addrEnd(addr, Entries.missingLevel(pmdE), Long.MAX_VALUE);
            } else if (Pte.sharedTable(entries.getAcquire(pmdE))) {
                return addr;
            } else {
                addr += Entries.PMD_SIZE;
            }
        }
        return -1;
    }

    /**
     * Makes every table in the 2 MiB hull of {@code [start, end)} private to this space, as the
     * class comment says; with {@code drop}, a table wholly inside {@code [start, end)} that
     * others still share is let go of instead of copied. Caller holds mmap_lock for write.
     *
     * @return whether there was a shared table (and the hull's VMAs are new objects now)
     * @throws VmException ENOMEM if a copy found no frame (the tables done so far stay done,
     *                     which no one can tell from before)
     */
    public boolean unshareRange(long start, long end, boolean drop) {
        if (!anyShared(start, end)) {
            return false;
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
        LongList dropped = new LongList(16);
        TableUnshareEvent event = TableUnshareEvent.start();
        int n = 0;
        long first = hi;
        long last = lo;
        try {
            // Copies first, drops after: a copy can fail for want of a frame, and then no table
            // may have been dropped yet (the range stays mapped; a dropped one would read zeros).
            for (int pass = 0; pass < (drop ? 2 : 1); pass++) {
                for (long a = nextShared(lo, hi); a >= 0; a = nextShared(a + Entries.PMD_SIZE, hi)) {
                    boolean whole = drop && a >= start && a + Entries.PMD_SIZE <= end;
                    if (whole == (pass == 1)) {
                        unshareOne(entries.lookupPmd(mm.pgd(), a), whole, counts, dropped);
                        n++;
                        first = Math.min(first, a);
                        last = Math.max(last, a + Entries.PMD_SIZE);
                    }
                }
            }
        } finally {
            letGo(dropped, counts);
            counts.fold();
            List<Vma> fresh = new ArrayList<>(hull.size());
            for (Vma v : hull) {
                fresh.add(v.slice(v.start, v.end));
            }
            if (!hull.isEmpty()) {
                mm.vmas().replace(hull.getFirst().start, hull.getLast().end, fresh);
            }
            TableUnshareEvent.end(event, mm.id(), n > 0 ? first : lo, n > 0 ? last : lo, drop, n);
        }
        return true;
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

    /**
     * Unshares the shared table at {@code pmdE}: keeps it (the last user), copies it, or (with
     * {@code drop}) clears the PMD entry and adds the table to {@code dropped}, for
     * {@link #letGo} to let go of after one shootdown and one wait for all of them. A table to
     * copy is allocated only once the count under the lock says a copy is needed, outside the
     * lock, and the decision is then made again: keeping or dropping needs no memory.
     */
    private void unshareOne(long pmdE, boolean drop, VmCounters.Local counts, LongList dropped) {
        // The copy table, until tryUnshare installs it: from then on it is this space's table.
        long[] copy = {FrameAllocator.NO_FRAME};
        try {
            while (tryUnshare(pmdE, drop, copy, counts, dropped) == NEED_COPY) {
                copy[0] = tables.allocTable(Entries.PTE, counts);
                if (copy[0] == FrameAllocator.NO_FRAME) {
                    OomEvent.emit("unshare", mm.id(), 0, true, mm.memory());
                    throw new VmException(VmException.Code.ENOMEM, "no frame to unshare the page table at 0x"
                            + Long.toHexString(pmdE));
                }
            }
        } finally {
            if (copy[0] != FrameAllocator.NO_FRAME) {
                tables.freeTable(copy[0], Entries.PTE);
            }
        }
    }

    /** One attempt of {@link #unshareOne} with {@code copyHolder[0]} (or none) at hand; clears it once it is installed. */
    private int tryUnshare(long pmdE, boolean drop, long[] copyHolder, VmCounters.Local counts, LongList dropped) {
        long copy = copyHolder[0];
        long pmd = entries.getAcquire(pmdE);
        long table = Pte.pfn(pmd);
        boolean last = false;
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
                return DONE;
            }
            if (drop) {
                long pages = map.ptePagesPlain(table);
                entries.setRelease(pmdE, 0);
                dropped.add(table);
                counts.add(VmCounters.RSS, -pages);
                counts.add(VmCounters.FRAMES_HELD, -1 - pages);
                return DONE;
            }
            if (copy == FrameAllocator.NO_FRAME) {
                return NEED_COPY;
            }
            TableCopy.copyInto(entries, map, table, copy);
            // Release: the copy's entries before the entry that names it. The copy is mapped now:
            // whatever throws from here on, the caller must not free it.
            entries.setRelease(pmdE, Pte.mkTable(copy));
            copyHolder[0] = FrameAllocator.NO_FRAME;
            long gen = mm.flushTlb();
            ptl.unlock(pmdLock);
            pmdLocked = false;
            // An access of this space that began before the bump may still walk the table: wait
            // for it before the count says the table is no longer this space's to read. Under
            // the table's lock, so that of two spaces unsharing at once exactly one copies.
            awaitGeneration(gen);
            counts.add(VmCounters.FRAMES_HELD, -1);
            last = letGoOf(table, counts);
            counts.increment(VmCounters.UNSHARE_COPIED);
        } finally {
            ptl.unlock(tableLock);
            if (pmdLocked) {
                ptl.unlock(pmdLock);
            }
        }
        if (last) {
            // A space that dropped the table meanwhile left it to this one.
            freeOrphan(table, counts);
        }
        return COPIED;
    }

    /**
     * The dropped tables' PMD entries are clear: one shootdown, one wait for this space's
     * accesses that began before it, then each table's share is let go of. The count may reach
     * -1 only here, when spaces dropped a table at once and each saw another still sharing it:
     * the one that takes it there frees it, as the RFC's {@code put_page_testzero} does.
     */
    private void letGo(LongList dropped, VmCounters.Local counts) {
        if (dropped.size() == 0) {
            return;
        }
        awaitGeneration(mm.flushTlb());
        for (int i = 0; i < dropped.size(); i++) {
            if (letGoOf(dropped.get(i), counts)) {
                freeOrphan(dropped.get(i), counts);
            }
            counts.increment(VmCounters.UNSHARE_DROPPED);
        }
    }

    /**
     * This space no longer maps {@code table}, and none of its accesses can reach it: its share
     * goes (volatile). Returns whether that was the last one: then no space maps the table and
     * every one that did has waited for its accesses, and the caller frees it with
     * {@link #freeOrphan} (without its lock held: the destructor checks it is free).
     */
    private boolean letGoOf(long table, VmCounters.Local counts) {
        tables.unlinked(Entries.PTE);
        if (splitPte) {
            ptLocks.accountShared(-1);
        }
        counts.add(VmCounters.SHARED_TABLES, -1);
        return map.addAndGetPtShareCount(table, -1) < 0;
    }

    /**
     * Frees a table no space maps any more, and the pages it maps, through a gather. A copier
     * takes the count down under the table's lock and holds it a little longer: taking the lock
     * once here waits for it to let go, so the destructor never meets a held lock.
     */
    private void freeOrphan(long table, VmCounters.Local counts) {
        long lock = ptl.pteLockptr(Pte.mkTable(table));
        ptl.lockPte(lock);
        ptl.unlock(lock);
        map.clearPtShareCount(table);
        tables.adopt(table);
        if (splitPte) {
            ptLocks.accountShared(1);
        }
        MmuGather tlb = zap.gather();
        int pages = 0;
        for (int i = 0; i < Entries.PTRS_PER_TABLE; i++) {
            long e = entries.getPlain(Entries.entry(table, i));
            if (Pte.ownsFrame(e)) {
                tlb.removeReplacedPage(Pte.pfn(e));
                pages++;
            }
        }
        counts.add(VmCounters.FRAMES_HELD, 1 + pages);
        map.addPtePagesPlain(table, -pages);
        tlb.freeUnlinkedTable(table, Entries.PTE);
        tlb.finish();
    }

    /**
     * The child's half of {@code Fork}'s sharing: counts the table it now maps, with its lock and its
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

    /**
     * Waits for this space's accesses that began before generation {@code gen}; they take no
     * lock, so a caller may hold page-table locks here. Fork waits here for its shootdown too.
     */
    public void awaitGeneration(long gen) {
        GracePeriodWaitEvent e = GracePeriodWaitEvent.start();
        int attempt = 0;
        while (reclaimer.minActive() < gen) {
            attempt = Backoff.idle(attempt);
        }
        GracePeriodWaitEvent.end(e, "shootdown", mm.id(), gen, true);
    }
}
