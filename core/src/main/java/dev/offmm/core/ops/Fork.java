package dev.offmm.core.ops;

import dev.offmm.core.VmException;
import dev.offmm.core.event.ForkEvent;
import dev.offmm.core.event.OomEvent;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.mm.VmCounters;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PgtableAlloc;
import dev.offmm.core.pgtable.PtlSlot;
import dev.offmm.core.pgtable.Pte;
import dev.offmm.core.vma.Vma;
import dev.offmm.offheap.frame.FrameAllocator;
import dev.offmm.offheap.frame.HugeFrames;
import dev.offmm.offheap.page.MemMap;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.Lock;

/**
 * {@code fork()} of an address space's anonymous private memory ({@code dup_mmap} and
 * {@code copy_page_range}): a new address space on the same physical memory with the same VMAs,
 * every private page copy-on-write in both.
 *
 * <p>Under the parent's mmap_lock held for write, with every VMA write-locked (no fault runs, and
 * none starts until the end), and with the parent's fork sequence odd (pins check it, see
 * {@code PinGuard}), each 2 MiB of each VMA is:
 * <ul>
 *   <li>with a PTE table that lies wholly inside the VMA, and sharing on: shared
 *       ({@link #share}, see {@link dev.offmm.core.unmap.TableShare}): both PMD entries lose W, the share count
 *       goes up, no page is touched;</li>
 *   <li>otherwise copied ({@code copy_pte_range}): each present page is write-protected in the
 *       parent and mapped read-only in the child, its mapcount and refcount raised; zero-page
 *       entries are copied as they are; a page whose refcount exceeds its mapcount is pinned and
 *       is copied for the child at once ({@code page_maybe_dma_pinned} at fork), so the pin keeps
 *       pointing at the parent's page and no copy-on-write can make it stale;</li>
 *   <li>a transparent huge page is split first (the kernel splits it on the first write fault
 *       instead; offmm's shared tables work at 4 KiB, so it splits at fork), and a hugetlb page,
 *       which never splits, is copied for the child.</li>
 * </ul>
 * The parent's TLB generation is bumped before mmap_lock and the VMA locks drop: until then a
 * parent context may still write through a writable translation, which the child, mapping the
 * same page, sees as a write made before the fork. After the bump no context can write a page
 * the child maps (CVE-2018-18281 is what a late flush allows).
 */
public final class Fork {
    /** Test only: fork without its shootdown, the broken variant the stress suite must catch. */
    private static volatile boolean omitShootdown;
    private final MmServices parent;
    private final MmServices child;
    private final Mm mm;
    private final Entries entries;
    private final MemMap map;
    private final MemorySegment region;
    private final VmCounters.Local counts;
    private final PtlSlot slot = new PtlSlot();
    private final int[] pages = new int[1];
    private final boolean share;
    /** Whether a pin of the parent is open: read after the fork sequence went odd (see PinGuard). */
    private boolean checkPins;
    /** What {@link #prefetchTables} read, kept so its loads are not dead code. */
    private long prefetched;

    private Fork(MmServices parent, MmServices child) {
        this.parent = parent;
        this.child = child;
        this.mm = parent.mm();
        this.entries = parent.entries();
        this.map = parent.memory().zone().memMap();
        this.region = parent.memory().zone().region();
        this.counts = child.mm().counters().local();
        this.share = mm.config().sharePageTables() && parent.shares().canShare();
    }

    /**
     * Forks {@code parent}: returns the services of a new address space whose memory reads as
     * the parent's did at the moment of the fork.
     *
     * @throws VmException ENOMEM if a table or a copied page found no frame (the child is gone again)
     */
    public static MmServices fork(MmServices parent) {
        ForkEvent event = ForkEvent.start();
        VmCounters pc = parent.mm().counters();
        long pinned = event != null ? pc.sum(VmCounters.FORK_PINNED_COPIES) : 0;
        MmServices child = MmServices.create(parent.memory(), parent.mm().config());
        Fork f = new Fork(parent, child);
        try {
            f.run();
            if (ForkEvent.shouldCommit(event)) {
                VmCounters cc = child.mm().counters();
                ForkEvent.end(event, parent.mm().id(), child.mm().id(), child.mm().vmas().size(),
                        cc.sum(VmCounters.RSS) * Entries.PAGE_SIZE, cc.sum(VmCounters.SHARED_TABLES),
                        pc.sum(VmCounters.FORK_PINNED_COPIES) - pinned);
            }
            return child;
        } catch (RuntimeException | Error e) {
            if (e instanceof VmException v && v.code() == VmException.Code.ENOMEM) {
                OomEvent.emit("fork", parent.mm().id(), 0, false, parent.memory());
            }
            f.counts.fold();
            discard(child, e);
            throw e;
        }
    }

    /**
     * Tears down a child whose fork failed ({@code cause}), or that could not be registered with
     * its memory because the memory is closing: a teardown that meets the memory's release fails
     * and is added to {@code cause} as suppressed (the child's frames go with the memory then).
     */
    public static void discard(MmServices child, Throwable cause) {
        try {
            if (!child.memory().isClosed()) {
                child.closeForFailedFork();
            }
        } catch (RuntimeException e) {
            cause.addSuppressed(e);
        }
    }

    private void run() {
        Lock w = mm.vmas().mmapLock().writeLock();
        w.lock();
        try {
            mm.ensureOpen();
            Vma[] vmas = mm.vmas().snapshot();
            for (Vma v : vmas) {
                v.writeLockAndDetach();
            }
            List<Vma> copies = new ArrayList<>(vmas.length);
            for (Vma v : vmas) {
                copies.add(v.slice(v.start, v.end));
            }
            mm.beginFork();
            checkPins = mm.livePins() != 0;
            try {
                if (share) {
                    mm.markSharing();
                    child.mm().markSharing();
                }
                child.mm().vmas().replace(0, Entries.USER_END, copies);
                for (Vma v : vmas) {
                    copyVma(v);
                }
            } finally {
                // Write-protected entries take effect for every context before anyone may fault.
                if (!omitShootdown) {
                    // And is complete: a parent access that began before the bump may still be
                    // about to store through a writable translation into a page the child maps.
                    // Waiting for it is what the kernel's synchronous IPI does.
                    parent.shares().awaitGeneration(mm.flushTlb());
                }
                mm.endFork();
                List<Vma> fresh = new ArrayList<>(vmas.length);
                for (Vma v : vmas) {
                    fresh.add(v.slice(v.start, v.end));
                }
                mm.vmas().replace(0, Entries.USER_END, fresh);
            }
            mm.counters().increment(VmCounters.FORKS);
            counts.fold();
        } finally {
            w.unlock();
        }
    }

    /**
     * Test only: whether forks skip the parent's shootdown (a broken fork whose parent contexts
     * keep writing through writable translations into pages the child maps).
     */
    public static void omitShootdownForTesting(boolean on) {
        omitShootdown = on;
    }

    /**
     * Loads the struct page of every PTE table of {@code v}, with nothing depending on the loads,
     * before the loop that locks each table and raises its share count: cold, every one is a
     * cache and TLB miss, and independent loads overlap where the loop's locked updates could not.
     */
    private void prefetchTables(Vma v) {
        long sum = 0;
        for (long addr = v.start & ~Entries.PMD_MASK; addr < v.end; addr += Entries.PMD_SIZE) {
            long pmdE = entries.lookupPmd(mm.pgd(), addr);
            if (pmdE >= 0) {
                long pmd = entries.getAcquire(pmdE);
                if (Pte.table(pmd)) {
                    sum += map.ptePagesPlain(Pte.pfn(pmd));
                }
            } else {
                addr = Entries.addrEnd(addr, Entries.missingLevel(pmdE), v.end) - Entries.PMD_SIZE;
            }
        }
        prefetched = sum;
    }

    private void copyVma(Vma v) {
        if (share) {
            prefetchTables(v);
        }
        long addr = v.start;
        while (addr < v.end) {
            long next = Entries.addrEnd(addr, Entries.PMD, v.end);
            long pmdE = entries.lookupPmd(mm.pgd(), addr);
            if (pmdE < 0) {
                addr = Entries.addrEnd(addr, Entries.missingLevel(pmdE), v.end);
                continue;
            }
            long pmd = entries.getAcquire(pmdE);
            if (Pte.huge(pmd)) {
                if (Pte.hugetlb(pmd)) {
                    copyHugetlb(addr, pmd);
                    addr = next;
                    continue;
                }
                parent.huge().split(pmdE, addr, "fork");
                pmd = entries.getAcquire(pmdE);
            }
            if (Pte.table(pmd)) {
                boolean whole = (addr & Entries.PMD_MASK) == 0 && next - addr == Entries.PMD_SIZE;
                if (!(whole && share && shareTable(addr, pmdE))) {
                    copyTable(v, addr, next, pmdE);
                }
            }
            addr = next;
        }
    }

    /** The child's PMD entry for {@code addr}, creating its tables above. */
    private long childPmd(long addr) {
        long e = child.pgtables().pmdAlloc(child.mm().pgd(), addr, counts);
        if (e < 0) {
            throw new VmException(VmException.Code.ENOMEM, "fork: no frame for a page table of the child");
        }
        return e;
    }

    private boolean shareTable(long addr, long pmdE) {
        long cpmdE = childPmd(addr);
        long entry = share(pmdE);
        if (entry == 0) {
            return false;
        }
        // The child is no one's yet: a plain release store, no lock.
        entries.setRelease(cpmdE, entry);
        child.shares().adoptShared(pages[0], counts);
        return true;
    }

    /**
     * Makes the PTE table at the parent's PMD entry {@code pmdE} shared, and returns
     * the entry the child's PMD gets; or 0 if the table maps a pinned page, which the child must
     * get a copy of, so the table is copied instead. Caller holds mmap_lock for write with every
     * VMA write-locked, and bumps the TLB generation before it lets go of them.
     *
     * Sets {@code pages[0]} to the pages the table maps. The share count is the table's, guarded
     * by its split lock like its entries (see TableShare).
     */
    private long share(long pmdE) {
        long pmdLock = parent.ptl().pmdLock(Entries.tableOf(pmdE));
        try {
            long pmd = entries.getPlain(pmdE);
            long table = Pte.pfn(pmd);
            long tableLock = parent.ptl().pteLockptr(pmd);
            parent.ptl().lockPte(tableLock);
            try {
                // The table's own count of its pages: its 512 entries are read only with a pin open.
                int n = (int) map.ptePagesPlain(table);
                for (int i = 0; checkPins && i < Entries.PTRS_PER_TABLE; i++) {
                    long e = entries.getPlain(Entries.entry(table, i));
                    if (Pte.ownsFrame(e) && map.maybePinned(Pte.pfn(e))) {
                        return 0;
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
                parent.ptl().unlock(tableLock);
            }
        } finally {
            parent.ptl().unlock(pmdLock);
        }
    }

    /**
     * {@code copy_pte_range} for {@code [addr, end)} inside the parent's table at {@code pmdE}.
     * The table may itself be shared still (a madvise split its VMA after the fork that shared
     * it): copying from it raises page counts and clears W bits under its lock, which its other
     * users cannot tell, their PMD entries being read-only.
     */
    private void copyTable(Vma v, long addr, long end, long pmdE) {
        long cpmdE = childPmd(addr);
        if (child.pgtables().pteAlloc(cpmdE, counts) != PgtableAlloc.OK) {
            throw new VmException(VmException.Code.ENOMEM, "fork: no frame for a page table of the child");
        }
        long ctable = Pte.pfn(entries.getAcquire(cpmdE));
        long[] pinned = null;
        int npinned = 0;
        long pte = parent.ptl().pteOffsetMapLock(pmdE, addr, slot);
        if (pte < 0) {
            return;
        }
        try {
            for (long a = addr; a < end; a += Entries.PAGE_SIZE, pte += Long.BYTES) {
                long e = entries.getPlain(pte);
                if (Pte.none(e)) {
                    continue;
                }
                long ce = e;
                if (Pte.ownsFrame(e)) {
                    long pfn = Pte.pfn(e);
                    if (checkPins && map.maybePinned(pfn)) {
                        if (pinned == null) {
                            pinned = new long[Entries.PTRS_PER_TABLE * 2];
                        }
                        pinned[npinned++] = a;
                        pinned[npinned++] = e;
                        continue;
                    }
                    map.addAndGetMapcount(pfn, 1);
                    map.addAndGetRefcount(pfn, 1);
                    ce = Pte.wrprotect(e);
                    if (ce != e) {
                        entries.setRelease(pte, ce);
                    }
                    counts.increment(VmCounters.RSS);
                    counts.increment(VmCounters.FRAMES_HELD);
                    map.addPtePagesPlain(ctable, 1);
                }
                entries.setRelease(Entries.offset(ctable, a, Entries.PTE), ce);
            }
        } finally {
            parent.ptl().pteUnmapUnlock(pte, slot.ptl);
        }
        for (int i = 0; i < npinned; i += 2) {
            copyPinned(ctable, pinned[i], pinned[i + 1]);
        }
    }

    /**
     * A pinned page: the child gets its own copy now, with the parent's protection; the parent
     * keeps its page writable, and the pin keeps seeing the parent's writes. The copy reads the
     * page as it is when it is made, which is a moment inside the fork: parent contexts may write
     * it until the fork's shootdown, as they may write any page until then.
     */
    private void copyPinned(long ctable, long va, long e) {
        long pfn = child.pages().alloc();
        if (pfn == FrameAllocator.NO_FRAME) {
            throw new VmException(VmException.Code.ENOMEM, "fork: no frame to copy the pinned page at 0x"
                    + Long.toHexString(va));
        }
        MemorySegment.copy(region, Entries.physical(Pte.pfn(e), 0), region, Entries.physical(pfn, 0), Entries.PAGE_SIZE);
        map.addAndGetMapcount(pfn, 1);
        map.addPtePagesPlain(ctable, 1);
        entries.setRelease(Entries.offset(ctable, va, Entries.PTE), (e & ~Pte.PFN_MASK) | (pfn << Entries.PAGE_SHIFT));
        counts.increment(VmCounters.RSS);
        counts.increment(VmCounters.FRAMES_HELD);
        counts.increment(VmCounters.PAGES_ALLOCATED);
        mm.counters().increment(VmCounters.FORK_PINNED_COPIES);
    }

    /** A hugetlb page is never shared or split: the child gets a copy of all 2 MiB. */
    private void copyHugetlb(long addr, long pmd) {
        long cpmdE = childPmd(addr);
        long pfn = child.pages().allocHuge(true);
        if (pfn == FrameAllocator.NO_FRAME) {
            throw new VmException(VmException.Code.ENOMEM, "fork: no 2 MiB frame to copy the hugetlb page at 0x"
                    + Long.toHexString(addr));
        }
        MemorySegment.copy(region, Entries.physical(Pte.pfn(pmd), 0), region, Entries.physical(pfn, 0), Entries.PMD_SIZE);
        child.huge().frames().setMapcounts(pfn, 1);
        long lock = child.ptl().hugePteLock(cpmdE);
        try {
            child.huge().set(cpmdE, (pmd & ~Pte.PFN_MASK) | (pfn << Entries.PAGE_SHIFT));
        } finally {
            child.ptl().unlock(lock);
        }
        counts.add(VmCounters.RSS, HugeFrames.NR);
        counts.add(VmCounters.FRAMES_HELD, HugeFrames.NR);
        counts.add(VmCounters.PAGES_ALLOCATED, HugeFrames.NR);
        counts.increment(VmCounters.HUGE_PAGES);
    }
}
