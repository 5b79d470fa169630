package dev.offmm.core.ops;

import dev.offmm.core.Advice;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Prot;
import dev.offmm.core.VmException;
import dev.offmm.core.fault.FaultHandler;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.mm.VmCounters;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PtlSlot;
import dev.offmm.core.unmap.FreePgtables;
import dev.offmm.core.unmap.MmuGather;
import dev.offmm.core.unmap.TableShare;
import dev.offmm.core.unmap.Zap;
import dev.offmm.core.vma.Vma;
import dev.offmm.core.vma.VmaTree;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.Lock;

/**
 * mmap, munmap, mprotect and madvise for anonymous private memory, with the semantics of the
 * Linux man pages and kernel. Arguments are validated before anything changes, and every error
 * leaves the address space exactly as it was.
 *
 * <p>Deviation from Linux, on purpose: madvise over a range with holes fails with ENOMEM
 * without advising the mapped parts (Linux advises them and then fails), so that an error never
 * leaves a partial change.
 *
 * <p>Huge pages: a {@link MapFlags#HUGETLB} mapping needs a 2 MiB-multiple length (and a 2 MiB
 * aligned {@code FIXED} address), and no munmap, mprotect or madvise may cut one of its 2 MiB
 * pages (EINVAL, as for hugetlbfs). Placement follows {@code thp_get_unmapped_area}: a free hint
 * is taken as it is (rounded down to 2 MiB for hugetlb); without one, a mapping whose length is a
 * multiple of 2 MiB goes top-down at a 2 MiB-aligned address, falling back to any address if no
 * aligned gap is left (hugetlb: ENOMEM).
 */
public final class MapOps {
    /** The lowest address mmap may use ({@code vm.mmap_min_addr}). */
    public static final long MMAP_MIN_ADDR = 1L << 16;
    private static final long USER_END = Entries.USER_END;
    private static final long PAGE = Entries.PAGE_SIZE;
    private static final long HUGE_MASK = Entries.PMD_MASK;

    private final Mm mm;
    private final VmaTree vmas;
    private final Zap zap;
    private final FreePgtables freePgtables;
    private final FaultHandler faults;
    private final Collapse collapse;
    private final TableShare shares;

    /**
     * The operations of {@code mm}: leaves through {@code zap}, tables through
     * {@code freePgtables}, collapses through {@code collapse}, shared tables through {@code shares}.
     */
    MapOps(Mm mm, Zap zap, FreePgtables freePgtables, FaultHandler faults, Collapse collapse, TableShare shares) {
        this.mm = mm;
        this.shares = shares;
        this.collapse = collapse;
        this.vmas = mm.vmas();
        this.zap = zap;
        this.freePgtables = freePgtables;
        this.faults = faults;
    }

    private static long pageAlign(long length) {
        return (length + PAGE - 1) & -PAGE;
    }

    static IllegalArgumentException einval(String what) {
        return new IllegalArgumentException("EINVAL: " + what);
    }

    /** {@code mmap}: see {@link dev.offmm.core.AddressSpace#mmap}. Returns the start address. */
    public long mmap(long addr, long length, int prot, int flags) {
        if (length <= 0) {
            throw einval("length=" + length + " (expected > 0)");
        }
        if ((prot & ~Prot.ALL) != 0) {
            throw einval("prot=0x" + Integer.toHexString(prot) + " (expected a combination of Prot.READ and Prot.WRITE)");
        }
        if ((flags & ~MapFlags.ALL) != 0) {
            throw einval("flags=0x" + Integer.toHexString(flags) + " (unknown bits 0x"
                    + Integer.toHexString(flags & ~MapFlags.ALL) + ")");
        }
        boolean hugetlb = (flags & MapFlags.HUGETLB) != 0;
        if (hugetlb && (length & HUGE_MASK) != 0) {
            throw einval("length=" + length + " (expected a multiple of 2 MiB with HUGETLB)");
        }
        long len = pageAlign(length);
        if (len <= 0 || len > USER_END - MMAP_MIN_ADDR) {
            throw new VmException(VmException.Code.ENOMEM, "length=" + length + " exceeds the user address space");
        }
        boolean noReplace = (flags & MapFlags.FIXED_NOREPLACE) != 0;
        boolean fixed = noReplace || (flags & MapFlags.FIXED) != 0;
        if (fixed) {
            if ((addr & (PAGE - 1)) != 0) {
                throw einval("addr=0x" + Long.toHexString(addr) + " (expected a multiple of 4096 with FIXED)");
            }
            if (hugetlb && (addr & HUGE_MASK) != 0) {
                throw einval("addr=0x" + Long.toHexString(addr) + " (expected a multiple of 2 MiB with FIXED and HUGETLB)");
            }
            if (addr < MMAP_MIN_ADDR) {
                throw new VmException(VmException.Code.EPERM, "addr=0x" + Long.toHexString(addr)
                        + " is below mmap_min_addr 0x" + Long.toHexString(MMAP_MIN_ADDR));
            }
            if (addr > USER_END - len) {
                throw new VmException(VmException.Code.ENOMEM, "[0x" + Long.toHexString(addr) + ", +" + len
                        + ") leaves the user address space (end 0x" + Long.toHexString(USER_END) + ")");
            }
        }
        Lock w = vmas.mmapLock().writeLock();
        w.lock();
        try {
            mm.ensureOpen();
            long start;
            if (fixed) {
                start = addr;
                List<Vma> old = vmas.overlapping(start, start + len);
                if (noReplace && !old.isEmpty()) {
                    throw new VmException(VmException.Code.EEXIST, "[0x" + Long.toHexString(start) + ", 0x"
                            + Long.toHexString(start + len) + ") overlaps " + old.getFirst());
                }
                checkMapCount(old.isEmpty() ? 1 : 0);
                doMunmap(start, start + len);
            } else {
                checkMapCount(1);
                start = Placement.findFreeRange(vmas, addr, len, hugetlb);
            }
            int vmFlags = ((flags & MapFlags.NORESERVE) != 0 ? Vma.VM_NORESERVE : 0) | (hugetlb ? Vma.VM_HUGETLB : 0);
            vmas.replace(start, start + len, List.of(new Vma(start, start + len, prot, vmFlags)));
            if ((flags & MapFlags.POPULATE) != 0 && Prot.readable(prot)) {
                populate(start, start + len, Prot.writable(prot), hugetlb ? Entries.PMD_SIZE : PAGE);
            }
            return start;
        } finally {
            w.unlock();
        }
    }

    private void checkMapCount(int adding) {
        if (vmas.size() + adding > mm.config().maxMapCount()) {
            throw new VmException(VmException.Code.ENOMEM, "too many mappings (max_map_count=" + mm.config().maxMapCount() + ")");
        }
    }

    /**
     * {@code MAP_POPULATE}: faults every page in, stopping quietly at the first failure (as Linux
     * does: the mapping stays). Called with mmap_lock held for write, so no VMA lock is needed.
     */
    private void populate(long start, long end, boolean write, long step) {
        Vma vma = vmas.find(start);
        VmCounters.Local counts = mm.counters().local();
        PtlSlot slot = new PtlSlot(counts, 0);
        try {
            for (long va = start; va < end;) {
                if (faults.handleMmFault(vma, va, write, slot) != FaultHandler.OK) {
                    return;
                }
                // A fault that mapped a 2 MiB page populated the rest of it too.
                va = faults.mappedHuge(va) ? (va | Entries.PMD_MASK) + 1 : va + step;
            }
        } finally {
            counts.fold();
        }
    }

    /** {@code munmap}: see {@link dev.offmm.core.AddressSpace#munmap}. */
    public void munmap(long addr, long length) {
        long end = checkRange("munmap", addr, length, true);
        Lock w = vmas.mmapLock().writeLock();
        w.lock();
        try {
            mm.ensureOpen();
            doMunmap(addr, end);
        } finally {
            w.unlock();
        }
    }

    /**
     * Validates {@code [addr, addr + length)} for munmap / mprotect / madvise and returns its
     * page-aligned end ({@code addr} when length is 0 and {@code zeroOk}).
     */
    private static long checkRange(String op, long addr, long length, boolean zeroIsError) {
        if ((addr & (PAGE - 1)) != 0) {
            throw einval(op + ": addr=0x" + Long.toHexString(addr) + " (expected a multiple of 4096)");
        }
        if (length < 0 || (zeroIsError && length == 0)) {
            throw einval(op + ": length=" + length + " (expected > 0)");
        }
        long len = pageAlign(length);
        if (addr < 0 || addr > USER_END || len < 0 || len > USER_END - addr) {
            throw einval(op + ": [0x" + Long.toHexString(addr) + ", +" + length + ") leaves the user address space");
        }
        return addr + len;
    }

    /** Unmaps {@code [start, end)}; caller holds mmap_lock for write. */
    private void doMunmap(long start, long end) {
        List<Vma> old = vmas.overlapping(start, end);
        if (old.isEmpty()) {
            return;
        }
        HugetlbRanges.checkCuts("munmap", old, start, end);
        // Tables shared after a fork: let go of those the range covers, copy those it cuts.
        if (shares.unshareRange(start, end, true)) {
            old = vmas.overlapping(start, end);
        }
        for (Vma v : old) {
            v.writeLockAndDetach();
        }
        List<Vma> keep = new ArrayList<>(2);
        Vma first = old.getFirst();
        Vma last = old.getLast();
        if (first.start < start) {
            keep.add(first.slice(first.start, start));
        }
        if (last.end > end) {
            keep.add(last.slice(end, last.end));
        }
        long floor = first.start < start ? start : floorOf(start);
        long ceiling = last.end > end ? end : ceilingOf(end);
        MmuGather tlb = zap.gather();
        zap.unmapRange(tlb, Math.max(start, first.start), Math.min(end, last.end));
        freePgtables.freePgtables(tlb, Math.max(start, first.start), Math.min(end, last.end), floor, ceiling);
        vmas.replace(start, end, keep);
        tlb.finish();
    }

    private long floorOf(long start) {
        Vma prev = vmas.prevOf(start);
        return prev == null ? 0 : prev.end;
    }

    private long ceilingOf(long end) {
        Vma next = vmas.nextOf(end);
        return next == null ? USER_END : next.start;
    }

    /** {@code mprotect}: see {@link dev.offmm.core.AddressSpace#mprotect}. */
    public void mprotect(long addr, long length, int prot) {
        long end = checkRange("mprotect", addr, length, false);
        if ((prot & ~Prot.ALL) != 0) {
            throw einval("prot=0x" + Integer.toHexString(prot) + " (expected a combination of Prot.READ and Prot.WRITE)");
        }
        if (end == addr) {
            return;
        }
        Lock w = vmas.mmapLock().writeLock();
        w.lock();
        try {
            mm.ensureOpen();
            List<Vma> old = covering("mprotect", addr, end);
            HugetlbRanges.checkCuts("mprotect", old, addr, end);
            if (shares.unshareRange(addr, end, false)) {
                old = covering("mprotect", addr, end);
            }
            for (Vma v : old) {
                v.writeLockAndDetach();
            }
            MmuGather tlb = zap.gather();
            zap.changeProtection(tlb, addr, end, prot);
            vmas.replace(addr, end, split(old, addr, end, v -> new Vma(v.start, v.end, prot, v.flags)));
            tlb.finish();
        } finally {
            w.unlock();
        }
    }

    /** {@code madvise}: see {@link dev.offmm.core.AddressSpace#madvise}. */
    public void madvise(long addr, long length, int advice) {
        if (advice != Advice.DONTNEED && advice != Advice.WILLNEED && advice != Advice.HUGEPAGE
                && advice != Advice.NOHUGEPAGE && advice != Advice.COLLAPSE) {
            throw einval("advice=" + advice + " (expected DONTNEED, WILLNEED, HUGEPAGE, NOHUGEPAGE or COLLAPSE)");
        }
        long end = checkRange("madvise", addr, length, false);
        if (end == addr) {
            return;
        }
        switch (advice) {
            case Advice.DONTNEED -> dontneed(addr, end);
            case Advice.WILLNEED -> {
                Lock r = vmas.mmapLock().readLock();
                r.lock();
                try {
                    mm.ensureOpen();
                    covering("madvise", addr, end);
                } finally {
                    r.unlock();
                }
            }
            case Advice.COLLAPSE -> collapse.madvise(addr, end);
            default -> setHugeFlags(addr, end, advice == Advice.HUGEPAGE);
        }
    }

    /**
     * {@code MADV_DONTNEED}: zaps the pages under mmap_lock held for read (faults may run
     * concurrently and refault zero pages, as in Linux). Page tables stay.
     */
    private void dontneed(long addr, long end) {
        Lock r = vmas.mmapLock().readLock();
        while (true) {
            r.lock();
            try {
                mm.ensureOpen();
                HugetlbRanges.checkCuts("madvise", covering("madvise", addr, end), addr, end);
                // Unsharing needs mmap_lock for write; only a fork, which takes it too, shares
                // tables again, so once none shows under the read lock the zap finds none.
                if (!shares.anyShared(addr, end)) {
                    MmuGather tlb = zap.gather();
                    zap.unmapRange(tlb, addr, end);
                    tlb.finish();
                    return;
                }
            } finally {
                r.unlock();
            }
            unshareForDontneed(addr, end);
        }
    }

    private void unshareForDontneed(long addr, long end) {
        Lock w = vmas.mmapLock().writeLock();
        w.lock();
        try {
            mm.ensureOpen();
            HugetlbRanges.checkCuts("madvise", covering("madvise", addr, end), addr, end);
            shares.unshareRange(addr, end, true);
        } finally {
            w.unlock();
        }
    }

    private void setHugeFlags(long addr, long end, boolean huge) {
        Lock w = vmas.mmapLock().writeLock();
        w.lock();
        try {
            mm.ensureOpen();
            List<Vma> old = covering("madvise", addr, end);
            HugetlbRanges.checkCuts("madvise", old, addr, end);
            for (Vma v : old) {
                v.writeLockAndDetach();
            }
            vmas.replace(addr, end, split(old, addr, end, v -> {
                int f = v.flags & ~(Vma.VM_HUGEPAGE | Vma.VM_NOHUGEPAGE);
                return new Vma(v.start, v.end, v.prot, f | (huge ? Vma.VM_HUGEPAGE : Vma.VM_NOHUGEPAGE));
            }));
        } finally {
            w.unlock();
        }
    }

    private List<Vma> covering(String op, long start, long end) {
        return covering(vmas, op, start, end);
    }

    /** The VMAs covering {@code [start, end)} without a hole, or ENOMEM. Caller holds mmap_lock. */
    static List<Vma> covering(VmaTree vmas, String op, long start, long end) {
        List<Vma> old = vmas.overlapping(start, end);
        long at = start;
        for (Vma v : old) {
            if (v.start > at) {
                break;
            }
            at = v.end;
        }
        if (old.isEmpty() || at < end) {
            long hole = old.isEmpty() ? start : at;
            throw new VmException(VmException.Code.ENOMEM, op + ": [0x" + Long.toHexString(start) + ", 0x"
                    + Long.toHexString(end) + ") is not fully mapped (hole at 0x" + Long.toHexString(hole) + ")");
        }
        return old;
    }

    /** Splits {@code old} at {@code start} and {@code end}; the middle parts go through {@code change}. */
    private static List<Vma> split(List<Vma> old, long start, long end, java.util.function.UnaryOperator<Vma> change) {
        List<Vma> out = new ArrayList<>(old.size() + 2);
        for (Vma v : old) {
            if (v.start < start) {
                out.add(v.slice(v.start, start));
            }
            out.add(change.apply(v.slice(Math.max(v.start, start), Math.min(v.end, end))));
            if (v.end > end) {
                out.add(v.slice(end, v.end));
            }
        }
        return out;
    }

    /** Unmaps everything; caller holds mmap_lock for write. */
    public void unmapAll() {
        doMunmap(0, USER_END);
    }
}
