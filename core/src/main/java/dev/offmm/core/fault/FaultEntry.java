package dev.offmm.core.fault;

import dev.offmm.core.event.OomEvent;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.mm.VmCounters;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PtlSlot;
import dev.offmm.core.unmap.TableShare;
import dev.offmm.core.vma.Vma;
import dev.offmm.core.vma.VmaTree;
import dev.offmm.offheap.host.Backoff;

import java.util.concurrent.locks.Lock;

/**
 * The entry of every fault, {@code do_user_addr_fault}: checks the address, finds and locks the
 * VMA, and runs {@link FaultHandler#handleMmFault}. The one VMA-lock policy of offmm: take the
 * per-VMA read lock ({@code lock_vma_under_rcu}); while a writer is republishing that VMA, spin
 * and yield for it a bounded number of times; then fall back to mmap_lock for read, never for
 * write. Returns {@link FaultHandler} codes; nothing on this path allocates.
 *
 * <p>Enters and returns with no VMA lock, mmap_lock or page-table lock held.
 */
public final class FaultEntry {
    /** Spins and yields (never parks) for a VMA lock before a fault falls back to mmap_lock. */
    private static final int VMA_LOCK_RETRIES = 72;

    private final Mm mm;
    private final VmaTree vmas;
    private final FaultHandler handler;
    private final TableShare shares;

    /** Faults of {@code mm}, resolved by {@code handler}; shared tables unshared by {@code shares}. */
    public FaultEntry(Mm mm, FaultHandler handler, TableShare shares) {
        this.mm = mm;
        this.vmas = mm.vmas();
        this.handler = handler;
        this.shares = shares;
    }

    /**
     * {@link #fault}, but for a pin: with {@code FAULT_FLAG_UNSHARE}, so that the page ends up
     * this space's alone (copied if it is shared copy-on-write), with read access only required.
     */
    public int faultUnshare(long va, PtlSlot slot) {
        slot.unshare = true;
        try {
            return fault(va, false, slot);
        } finally {
            slot.unshare = false;
        }
    }

    /** See {@link FaultHandler#retireReplaced}. */
    public void retireReplaced(PtlSlot slot) {
        handler.retireReplaced(slot);
    }

    /**
     * Resolves a fault at {@code va} as a read or a write access would; returns
     * {@link FaultHandler#OK}, {@link FaultHandler#MAPERR}, {@link FaultHandler#ACCERR} or
     * {@link FaultHandler#OOM}.
     *
     * @throws IllegalStateException if the address space or its memory is closed
     */
    public int fault(long va, boolean write, PtlSlot slot) {
        int r;
        while ((r = faultOnce(va, write, slot)) == FaultHandler.UNSHARE) {
            // The table is shared after a fork: unshare it with no lock of the fault held.
            if (!shares.unshareForFault(va)) {
                slot.counts.increment(VmCounters.FAULT_OOM);
                OomEvent.emit("fault", mm.id(), va, write, mm.memory());
                return FaultHandler.OOM;
            }
        }
        return r;
    }

    private int faultOnce(long va, boolean write, PtlSlot slot) {
        mm.ensureOpen();
        if (va < 0 || va >= Entries.USER_END) {
            slot.counts.increment(VmCounters.FAULT_MAPERR);
            return FaultHandler.MAPERR;
        }
        Vma vma = vmas.lockVmaForRead(va, slot.stripe);
        // Optimistic spinning, as an rwsem does while its writer runs: a VMA being replaced by
        // mmap/munmap/mprotect is usually republished within microseconds, while parking on
        // mmap_lock costs a scheduler round trip (milliseconds when threads outnumber cores).
        for (int attempt = 0; vma == null && attempt < VMA_LOCK_RETRIES && vmas.find(va) != null;) {
            attempt = Backoff.idle(attempt);
            vma = vmas.lockVmaForRead(va, slot.stripe);
        }
        if (vma != null) {
            try {
                return handler.handleMmFault(vma, va, write, slot);
            } finally {
                vma.readUnlock(slot.stripe);
            }
        }
        Lock r = vmas.mmapLock().readLock();
        r.lock();
        try {
            mm.ensureOpen();
            slot.counts.increment(VmCounters.FAULT_MMAP_LOCK_FALLBACK);
            vma = vmas.find(va);
            if (vma == null) {
                slot.counts.increment(VmCounters.FAULT_MAPERR);
                return FaultHandler.MAPERR;
            }
            return handler.handleMmFault(vma, va, write, slot);
        } finally {
            r.unlock();
        }
    }
}
