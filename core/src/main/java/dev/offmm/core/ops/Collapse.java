package dev.offmm.core.ops;

import dev.offmm.core.Prot;
import dev.offmm.core.VmException;
import dev.offmm.core.event.GracePeriodWaitEvent;
import dev.offmm.core.event.HugeCollapseEvent;
import dev.offmm.core.event.OomEvent;
import dev.offmm.core.huge.HugePmd;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.mm.VmCounters;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PtlHelpers;
import dev.offmm.core.pgtable.Pte;
import dev.offmm.core.pgtable.TableAlloc;
import dev.offmm.core.reclaim.FrameSource;
import dev.offmm.core.reclaim.Reclaimer;
import dev.offmm.core.unmap.MmuGather;
import dev.offmm.core.unmap.TableShare;
import dev.offmm.core.unmap.Zap;
import dev.offmm.core.vma.Vma;
import dev.offmm.core.vma.VmaTree;
import dev.offmm.offheap.frame.FrameAllocator;
import dev.offmm.offheap.frame.HugeFrames;
import dev.offmm.offheap.page.MemMap;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.concurrent.locks.Lock;

/**
 * {@code MADV_COLLAPSE}: replaces the PTE table of each 2 MiB-aligned part of a range with one
 * huge entry whose fresh 2 MiB frame holds a copy of the present 4 KiB pages (absent and
 * zero-page ones read as zero).
 *
 * <p>The caller holds mmap_lock for write and has write-locked the VMAs, so no fault and no
 * walker runs in the range ({@code collapse_huge_page} takes mmap_lock for write too): a fault
 * there waits, and then sees the huge entry. Contexts, though, read and write through their
 * TLBs without any lock, so the copy may only start once none of them can still use the old
 * translations. Hence the order, each step under the PMD lock and the PTE lock:
 * <ol>
 *   <li>recheck the table and refuse (EAGAIN) if a page is pinned (its refcount is not just the
 *       mapping's), as the kernel's collapse does; clear the PMD entry and bump the TLB
 *       generation before the locks drop;</li>
 *   <li>wait, without locks, until every context has moved past that generation
 *       ({@link #awaitGeneration}); if one holds on too long, put the table back
 *       (nothing was copied or freed) and report EAGAIN. Then look for pins again: a pin is
 *       taken inside an access without locks, so one that began before the bump may have raised
 *       its refcount after the first look (the kernel checks after {@code pmdp_collapse_flush}
 *       for the same reason); now the look is exact;</li>
 *   <li>copy the pages, empty the old table and deposit it for the huge entry's later split
 *       (as the kernel deposits the collapsed table), publish the huge entry with release;</li>
 *   <li>free the old pages through a gather, after a grace period like any unmap.</li>
 * </ol>
 */
final class Collapse {
    /** How long a collapse waits for contexts to let go of the range before it gives up. */
    private static final long GRACE_TIMEOUT_NANOS = 1_000_000_000L;

    private final Mm mm;
    private final Entries entries;
    private final PtlHelpers ptl;
    private final TableAlloc tables;
    private final FrameSource pages;
    private final HugePmd huge;
    private final Zap zap;
    private final Reclaimer reclaimer;
    private final MemMap map;
    private final MemorySegment region;
    private final TableShare shares;

    Collapse(Mm mm, Entries entries, PtlHelpers ptl, TableAlloc tables, FrameSource pages, HugePmd huge, Zap zap,
             Reclaimer reclaimer, MemMap map, MemorySegment region, TableShare shares) {
        this.mm = mm;
        this.shares = shares;
        this.entries = entries;
        this.ptl = ptl;
        this.tables = tables;
        this.pages = pages;
        this.huge = huge;
        this.zap = zap;
        this.reclaimer = reclaimer;
        this.map = map;
        this.region = region;
    }

    /**
     * Collapses every 2 MiB-aligned part of {@code [start, end)}, under mmap_lock held for write
     * with the VMAs write-locked (so no fault runs in the range); they are put back unchanged. Contents never change, so a
     * failure part way leaves the parts before it collapsed and everything correct.
     *
     * @throws IllegalArgumentException EINVAL if a VMA is hugetlb or advised NOHUGEPAGE (nothing done)
     * @throws VmException ENOMEM without a 2 MiB frame, EAGAIN for a pinned page or a busy context
     */
    void madvise(long start, long end) {
        VmaTree tree = mm.vmas();
        Lock w = tree.mmapLock().writeLock();
        w.lock();
        try {
            mm.ensureOpen();
            // A collapse changes the tables it replaces: a shared one is copied (or kept) first.
            shares.unshareRange(start, end, false);
            List<Vma> old = MapOps.covering(tree, "madvise", start, end);
            for (Vma v : old) {
                v.writeLockAndDetach();
            }
            try {
                collapse(old, start, end);
            } finally {
                // The same VMAs again, as new objects: a write-locked VMA stays locked for good.
                tree.replace(old.getFirst().start, old.getLast().end, old.stream().map(v -> v.slice(v.start, v.end)).toList());
            }
        } finally {
            w.unlock();
        }
    }

    private void collapse(List<Vma> vmas, long start, long end) {
        for (Vma v : vmas) {
            if (v.hugetlb() || (v.flags & Vma.VM_NOHUGEPAGE) != 0) {
                throw new IllegalArgumentException("EINVAL: madvise COLLAPSE: " + v + " cannot hold transparent huge pages");
            }
        }
        for (long s = (start + Entries.PMD_MASK) & -Entries.PMD_SIZE; s < end && s + Entries.PMD_SIZE <= end;
             s += Entries.PMD_SIZE) {
            Vma vma = containing(vmas, s);
            if (vma != null && s + Entries.PMD_SIZE <= vma.end) {
                collapseOne(vma, s);
            }
        }
    }

    private static Vma containing(List<Vma> vmas, long va) {
        for (Vma v : vmas) {
            if (v.contains(va)) {
                return v;
            }
        }
        return null;
    }

    /** Collapses the 2 MiB at {@code s}, if a PTE table maps it. */
    private void collapseOne(Vma vma, long s) {
        long pmdE = entries.lookupPmd(mm.pgd(), s);
        if (pmdE < 0) {
            return;
        }
        long pmd = entries.getAcquire(pmdE);
        if (!Pte.table(pmd)) {
            return;
        }
        HugeCollapseEvent event = HugeCollapseEvent.start();
        long pfn = pages.allocHuge(true);
        if (pfn == FrameAllocator.NO_FRAME) {
            OomEvent.emit("collapse", mm.id(), s, true, mm.memory());
            throw new VmException(VmException.Code.ENOMEM, "madvise COLLAPSE: no 2 MiB frame for 0x" + Long.toHexString(s));
        }
        long table = Pte.pfn(pmd);
        long gen;
        try {
            gen = unlink(pmdE, pmd, table, s);
        } catch (RuntimeException | Error e) {
            huge.frames().freeUnused(pfn);
            throw e;
        }
        if (!awaitGeneration(gen)) {
            restore(pmdE, pmd, pfn);
            throw new VmException(VmException.Code.EAGAIN, "madvise COLLAPSE: an access in progress held 0x"
                    + Long.toHexString(s) + " for more than " + GRACE_TIMEOUT_NANOS / 1_000_000 + " ms");
        }
        // Pins are taken inside accesses, without locks: one that began before the bump may have
        // raised a refcount after the check under the locks. Now no context can reach the range
        // (and faults wait for mmap_lock), so this second look is exact.
        long pinned = pinnedPage(table);
        if (pinned >= 0) {
            restore(pmdE, pmd, pfn);
            throw new VmException(VmException.Code.EAGAIN, "madvise COLLAPSE: page 0x"
                    + Long.toHexString(s + pinned * Entries.PAGE_SIZE) + " is pinned");
        }
        MmuGather tlb = zap.gather();
        // No context, walker or fault can reach the old table now: plain loads and stores.
        for (int i = 0; i < HugeFrames.NR; i++) {
            long pte = Entries.entry(table, i);
            long e = entries.getPlain(pte);
            if (Pte.ownsFrame(e)) {
                long old = Pte.pfn(e);
                MemorySegment.copy(region, Entries.physical(old, 0), region, Entries.physical(pfn + i, 0),
                        Entries.PAGE_SIZE);
                tlb.removePage(old, 0);
            }
            if (Pte.ownsFrame(e)) {
                map.addPtePagesPlain(table, -1);
            }
            if (!Pte.none(e)) {
                entries.setPlain(pte, 0);
            }
        }
        huge.frames().setMapcounts(pfn, 1);
        long entry = Pte.mkHuge(pfn, Pte.protBits(Prot.readable(vma.prot), Prot.writable(vma.prot)), false);
        long lock = ptl.pmdLock(Entries.tableOf(pmdE));
        try {
            tables.deposit(Entries.tableOf(pmdE), table);
            // Release: the copied frame before the entry.
            huge.set(pmdE, entry);
        } finally {
            ptl.unlock(lock);
        }
        VmCounters c = mm.counters();
        c.add(VmCounters.RSS, HugeFrames.NR);
        c.add(VmCounters.FRAMES_HELD, HugeFrames.NR);
        c.add(VmCounters.PAGES_ALLOCATED, HugeFrames.NR);
        c.increment(VmCounters.HUGE_PAGES);
        c.increment(VmCounters.THP_COLLAPSE);
        tlb.finish();
        HugeCollapseEvent.end(event, mm.id(), s);
    }

    /**
     * {@code synchronize_rcu} for one bump: waits up to {@link #GRACE_TIMEOUT_NANOS} until no
     * access in progress can still use a translation older than generation {@code gen}, as an
     * unmap's batch waits before its release ({@link Reclaimer#minActive} issues the barrier that
     * makes idle contexts count as past it). Holds no page-table lock.
     */
    private boolean awaitGeneration(long gen) {
        GracePeriodWaitEvent e = GracePeriodWaitEvent.start();
        long deadline = System.nanoTime() + GRACE_TIMEOUT_NANOS;
        long park = 1_000;
        boolean done;
        while (!(done = reclaimer.minActive() >= gen) && System.nanoTime() - deadline < 0) {
            java.util.concurrent.locks.LockSupport.parkNanos(park);
            park = Math.min(park * 2, 1_000_000);
        }
        GracePeriodWaitEvent.end(e, "collapse", mm.id(), gen, done);
        return done;
    }

    /** Puts the PTE table back (nothing was copied or freed) and frees the unused huge frame. */
    private void restore(long pmdE, long pmd, long pfn) {
        long lock = ptl.pmdLock(Entries.tableOf(pmdE));
        try {
            entries.setRelease(pmdE, pmd);
        } finally {
            ptl.unlock(lock);
        }
        huge.frames().freeUnused(pfn);
    }

    /** The index of the first page of PTE table {@code table} that a pin holds, or -1. */
    private long pinnedPage(long table) {
        for (int i = 0; i < HugeFrames.NR; i++) {
            long e = entries.getPlain(Entries.entry(table, i));
            // A reference beyond the mappings (COW sharing after a fork counts one of each) is a pin.
            if (Pte.ownsFrame(e) && map.maybePinned(Pte.pfn(e))) {
                return i;
            }
        }
        return -1;
    }

    /**
     * Under the PMD lock and the PTE lock (one lock in single mode): rechecks the table, refuses
     * pinned pages, clears the PMD entry and bumps the TLB generation before the locks drop.
     * Returns the new generation.
     */
    private long unlink(long pmdE, long pmd, long table, long s) {
        long pmdLock = ptl.pmdLock(Entries.tableOf(pmdE));
        long pteLock = ptl.pteLockptr(pmd);
        boolean two = pteLock != pmdLock;
        if (two) {
            ptl.lockPte(pteLock);
        }
        try {
            if (entries.getPlain(pmdE) != pmd) {
                throw new IllegalStateException("PMD entry at 0x" + Long.toHexString(s) + " changed under mmap_lock");
            }
            // A first look, to refuse early; the exact one follows the grace period.
            long pinned = pinnedPage(table);
            if (pinned >= 0) {
                throw new VmException(VmException.Code.EAGAIN, "madvise COLLAPSE: page 0x"
                        + Long.toHexString(s + pinned * Entries.PAGE_SIZE) + " is pinned");
            }
            entries.setRelease(pmdE, 0);
            return mm.flushTlb();
        } finally {
            if (two) {
                ptl.unlock(pteLock);
            }
            ptl.unlock(pmdLock);
        }
    }
}
