package dev.offmm.core;

import dev.offmm.core.mm.Mm;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.Pte;
import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.page.MemMap;

/**
 * Pins against fork: the two rules that keep a pin's segment on the page its space keeps writing.
 *
 * <ol>
 *   <li>A pin takes only a page that is its space's alone: mapped once, through a table no other
 *       space shares. A page shared copy-on-write after a fork is first made exclusive by an
 *       unshare fault ({@code FAULT_FLAG_UNSHARE}, as the kernel does for long-term pins), or the
 *       pin would see the old page after the space's next write copied it.</li>
 *   <li>A pin never slips past a fork that does not see it. Fork raises the fork sequence before
 *       it reads the space's pin count and any refcount (and copies a page whose refcount exceeds
 *       its mapcount for the child at once; with no pin open it checks no page); a pin raises the
 *       refcount and the pin count and then reads the sequence, and gives up and tries again if
 *       it moved (the kernel's {@code write_protect_seq} for GUP-fast). All are volatile, so
 *       either the fork sees the pin or the pin sees the fork.</li>
 * </ol>
 * Called inside an access, where neither the tables nor the frame can be freed.
 */
final class PinGuard {
    private final Mm mm;
    private final Entries entries;
    private final MemMap map;
    private final PhysicalMemory memory;

    PinGuard(Mm mm, Entries entries) {
        this.mm = mm;
        this.entries = entries;
        this.memory = mm.memory();
        this.map = memory.zone().memMap();
    }

    /**
     * Pins page {@code pfn} mapped at {@code va}, or returns null: the page is not this space's
     * alone (the caller unshares it), or a fork began after the caller read sequence {@code seq}.
     */
    PinnedPage tryPin(long va, long pfn, long seq) {
        if (pfn == PhysicalMemory.ZERO_PFN) {
            return PinnedPage.pin(memory, va, pfn);
        }
        long pmdE = entries.lookupPmd(mm.pgd(), va);
        long pmd = pmdE < 0 ? 0 : entries.getAcquire(pmdE);
        if (Pte.sharedTable(pmd) || (!Pte.huge(pmd) && map.mapcountVolatile(pfn) != 1)) {
            return null;
        }
        map.addAndGetRefcount(pfn, 1);
        mm.pinOpened();
        if (mm.forkSeq() != seq) {
            // The mapping's reference is still held (this is inside an access): never the last.
            mm.pinClosed();
            map.addAndGetRefcount(pfn, -1);
            return null;
        }
        try {
            return PinnedPage.pinned(memory, va, pfn, mm);
        } catch (RuntimeException | Error e) {
            mm.pinClosed();
            map.addAndGetRefcount(pfn, -1);
            throw e;
        }
    }
}
