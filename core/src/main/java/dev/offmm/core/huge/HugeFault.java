package dev.offmm.core.huge;

import dev.offmm.core.Prot;
import dev.offmm.core.Thp;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.mm.VmCounters;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PtlHelpers;
import dev.offmm.core.pgtable.Pte;
import dev.offmm.core.pgtable.TableAlloc;
import dev.offmm.core.reclaim.FrameSource;
import dev.offmm.core.vma.Vma;
import dev.offmm.offheap.frame.FrameAllocator;
import dev.offmm.offheap.frame.HugeFrames;

/**
 * The faults that map 2 MiB pages: {@code do_huge_pmd_anonymous_page} (THP),
 * {@code hugetlb_fault}, and a fault on an entry that is already huge. The protocol is the
 * 4 KiB one at PMD level: allocate and zero the frame (and, for THP, the PTE table to deposit)
 * outside every lock, take the PMD lock, recheck that the entry is still empty, publish with a
 * release store; a loser frees what it allocated (the table through its destructor). Nothing here
 * allocates a Java object.
 *
 * <p>A 4 KiB fault in the same empty 2 MiB range installs its PTE table under the same PMD lock
 * with the same recheck, so exactly one of the two wins; the other retries and finds the winner's
 * entry. A read fault in a THP-eligible range maps the 4 KiB zero page through a PTE table (see
 * {@link Thp}): a huge zero page would cost 2 MiB of frames held back and a split on every
 * first write, and an untouched range that is only read is not what huge pages are for.
 *
 * <p>Results are {@code FaultHandler}'s codes ({@link #OK}, {@link #OOM}, {@link #RETRY}), plus
 * {@link #FALLBACK}: map 4 KiB pages instead.
 */
public final class HugeFault {
    /** Resolved (same value as {@code FaultHandler.OK}). */
    public static final int OK = 0;
    /** No memory (same value as {@code FaultHandler.OOM}). */
    public static final int OOM = 3;
    /** The entry changed under us: walk again. */
    public static final int RETRY = 4;
    /** No huge page here after all: take the 4 KiB path. */
    public static final int FALLBACK = 5;

    private final Mm mm;
    private final Entries entries;
    private final PtlHelpers ptl;
    private final TableAlloc tables;
    private final FrameSource pages;
    private final HugePmd huge;
    private final HugeFrames frames;

    /** The huge faults of {@code mm}. */
    public HugeFault(Mm mm, Entries entries, PtlHelpers ptl, TableAlloc tables, FrameSource pages, HugePmd huge) {
        this.mm = mm;
        this.entries = entries;
        this.ptl = ptl;
        this.tables = tables;
        this.pages = pages;
        this.huge = huge;
        this.frames = huge.frames();
    }

    /**
     * Whether a fault at {@code va} may map a transparent huge page: the policy allows it in
     * {@code vma}, and the 2 MiB-aligned range around {@code va} lies wholly inside it.
     */
    public boolean thpSuitable(Vma vma, long va) {
        Thp mode = mm.config().thp();
        if (mode == Thp.NEVER || (vma.flags & Vma.VM_NOHUGEPAGE) != 0
                || (mode == Thp.MADVISE && (vma.flags & Vma.VM_HUGEPAGE) == 0)) {
            return false;
        }
        long start = va & -Entries.PMD_SIZE;
        return start >= vma.start && start + Entries.PMD_SIZE <= vma.end;
    }

    /**
     * A write fault in a THP-suitable range whose PMD entry at {@code pmdEntry} was empty.
     * Returns {@link #OK}, {@link #RETRY} (another fault filled the entry first) or
     * {@link #FALLBACK} (counted; no order-9 frame, or no table to deposit).
     */
    public int anonymous(Vma vma, long pmdEntry, VmCounters.Local counts) {
        long pfn = pages.allocHuge(false);
        if (pfn == FrameAllocator.NO_FRAME) {
            counts.increment(VmCounters.THP_FALLBACK);
            return FALLBACK;
        }
        long table = tables.allocTable(Entries.PTE, counts);
        if (table == FrameAllocator.NO_FRAME) {
            frames.freeUnused(pfn);
            counts.increment(VmCounters.THP_FALLBACK);
            return FALLBACK;
        }
        if (!install(vma, pmdEntry, pfn, table, counts)) {
            tables.freeTable(table, Entries.PTE);
            return RETRY;
        }
        counts.increment(VmCounters.FAULT_THP);
        return OK;
    }

    /**
     * A fault in a hugetlb VMA at the PMD entry {@code pmdEntry}: maps a 2 MiB frame (for a read
     * too, as hugetlbfs does), or handles the huge entry already there. Never falls back: with
     * no 2 MiB frame after reclaim it is {@link #OOM}.
     */
    public int hugetlb(Vma vma, long pmdEntry, boolean write, VmCounters.Local counts) {
        long pmd = entries.getAcquire(pmdEntry);
        if (!Pte.none(pmd)) {
            if (Pte.table(pmd)) {
                throw new IllegalStateException("hugetlb VMA " + vma + " has a PTE table at 0x"
                        + Long.toHexString(pmdEntry));
            }
            return onHuge(vma, pmdEntry, pmd, write, counts);
        }
        long pfn = pages.allocHuge(true);
        if (pfn == FrameAllocator.NO_FRAME) {
            return OOM;
        }
        if (!install(vma, pmdEntry, pfn, FrameAllocator.NO_FRAME, counts)) {
            return RETRY;
        }
        counts.increment(VmCounters.FAULT_HUGETLB);
        return OK;
    }

    /**
     * Under the PMD lock: rechecks that the entry is empty, deposits {@code table} (THP; NO_FRAME
     * for hugetlb) and publishes the huge entry. On a lost race frees the frame (not the table).
     */
    private boolean install(Vma vma, long pmdEntry, long pfn, long table, VmCounters.Local counts) {
        boolean hugetlb = table == FrameAllocator.NO_FRAME;
        long entry = Pte.mkHuge(pfn, Pte.protBits(true, Prot.writable(vma.prot)), hugetlb);
        frames.setMapcounts(pfn, 1);
        long lock = ptl.hugePteLock(pmdEntry);
        boolean won;
        try {
            won = Pte.none(entries.getPlain(pmdEntry));
            if (won) {
                if (!hugetlb) {
                    tables.deposit(Entries.tableOf(pmdEntry), table);
                }
                // Release: the zeroed frame and its counts before the entry.
                huge.set(pmdEntry, entry);
            }
        } finally {
            ptl.unlock(lock);
        }
        if (!won) {
            frames.setMapcounts(pfn, 0);
            frames.freeUnused(pfn);
            counts.increment(VmCounters.FAULT_SPURIOUS);
            return false;
        }
        counts.add(VmCounters.RSS, HugeFrames.NR);
        counts.add(VmCounters.FRAMES_HELD, HugeFrames.NR);
        counts.add(VmCounters.PAGES_ALLOCATED, HugeFrames.NR);
        counts.increment(VmCounters.HUGE_PAGES);
        return true;
    }

    /**
     * A fault on the huge entry {@code pmd}: a write to a read-only one in a writable VMA makes
     * it writable ({@code huge_pmd_wp}, an exclusive anonymous page is reused), anything else
     * was resolved by another thread.
     */
    public int onHuge(Vma vma, long pmdEntry, long pmd, boolean write, VmCounters.Local counts) {
        if (!Pte.present(pmd)) {
            throw new IllegalStateException("PROT_NONE huge entry 0x" + Long.toHexString(pmd) + " in VMA " + vma);
        }
        if (!write || Pte.writable(pmd)) {
            counts.increment(VmCounters.FAULT_SPURIOUS);
            return OK;
        }
        long lock = ptl.hugePteLock(pmdEntry);
        try {
            if (entries.getPlain(pmdEntry) != pmd) {
                return RETRY;
            }
            huge.set(pmdEntry, pmd | Pte.WRITE | Pte.DIRTY | Pte.ACCESSED);
        } finally {
            ptl.unlock(lock);
        }
        counts.increment(VmCounters.FAULT_REUSE);
        return OK;
    }
}
