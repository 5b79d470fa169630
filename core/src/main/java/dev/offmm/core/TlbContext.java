package dev.offmm.core;

import dev.offmm.core.fault.FaultEntry;
import dev.offmm.core.fault.FaultHandler;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PtlSlot;
import dev.offmm.core.pgtable.Pte;
import dev.offmm.core.reclaim.EpochSlot;
import dev.offmm.core.reclaim.Reclaimer;

import java.util.Arrays;

/**
 * The translating half of an {@link Mmu}: the software TLB, the lockless walk, the fault entry
 * and the context's place in the grace-period protocol (see {@link Mmu} for the protocol). The
 * state lives in the fields of the {@code Mmu} object itself, so a TLB hit loads the tag array
 * straight from the context. Confined to the owner thread.
 */
abstract sealed class TlbContext permits Mmu {
    /** 4 KiB TLB entries. */
    static final int TLB_ENTRIES = 64;
    /** 2 MiB TLB entries. */
    static final int HUGE_TLB_ENTRIES = 16;

    private static final long PAGE_MASK = Entries.PAGE_MASK;
    private static final long HUGE_MASK = Entries.PMD_MASK;
    /** TLB data bit: the translation allows writes. */
    private static final long TLB_WRITE = 1;
    private static final long NO_GEN = Long.MIN_VALUE;

    final Mm mm;
    final Reclaimer reclaimer;
    final EpochSlot slot;
    private final Entries entries;
    private final FaultEntry faults;
    private final Thread owner;
    private final PtlSlot ptlSlot = new PtlSlot();
    /** Direct-mapped TLB: tag {@code vpn + 1} (0 is empty) for reads, for writes, and the frame offset. */
    private final long[] readTags = new long[TLB_ENTRIES];
    private final long[] writeTags = new long[TLB_ENTRIES];
    private final long[] frames = new long[TLB_ENTRIES];
    private final long[] hugeTlb = new long[HUGE_TLB_ENTRIES * 2];
    private long seenGen = NO_GEN;
    /** The generation the TLB was valid for when the context went offline, or NO_GEN. */
    private long offlineGen = NO_GEN;
    private long flushes;
    private long misses;
    /** Set by {@link #markClosed()}; every later access fails. */
    private boolean closed;

    TlbContext(Mm mm, Entries entries, FaultEntry faults, Reclaimer reclaimer) {
        this.mm = mm;
        this.entries = entries;
        this.faults = faults;
        this.reclaimer = reclaimer;
        this.owner = Thread.currentThread();
        this.slot = reclaimer.register();
    }

    /** The generation this context's translations are valid for; read by {@link BulkCopy}. */
    final long generation() {
        return seenGen;
    }

    /**
     * The physical offset of {@code va} for a read or a write. The hot path: a generation check
     * and a tag compare, no allocation.
     */
    final long translate(long va, boolean write) {
        if (Thread.currentThread() != owner || mm.tlbGenAcquire() != seenGen) {
            syncSlowPath();
        }
        long vpn = va >>> Entries.PAGE_SHIFT;
        int i = (int) vpn & (TLB_ENTRIES - 1);
        // A write hits only a writable translation: the write tag is set for those alone, so the
        // permission check is the tag compare itself (write is a constant once inlined).
        if ((write ? writeTags[i] : readTags[i]) == vpn + 1) {
            return frames[i] | (va & PAGE_MASK);
        }
        return translateSlowPath(va, write);
    }

    private void syncSlowPath() {
        checkThread();
        if (closed) {
            throw new IllegalStateException("this Mmu is closed");
        }
        if (mm.isClosed()) {
            slot.idleRelease();
            throw new IllegalStateException("address space is closed");
        }
        // Publish the generation, then re-read it: the volatile store orders before the load, so
        // either the unmapper's scan sees our publication or we see its bump (Dekker pairing).
        online();
    }

    final void flushTlb() {
        Arrays.fill(readTags, 0);
        Arrays.fill(writeTags, 0);
        Arrays.fill(hugeTlb, 0);
        flushes++;
    }

    private long translateSlowPath(long va, boolean write) {
        if (va < 0 || va >= Entries.USER_END) {
            throw new FaultException(FaultException.Kind.MAPERR, va, write);
        }
        long vhpn = va >>> Entries.PMD_SHIFT;
        int h = (int) (vhpn & (HUGE_TLB_ENTRIES - 1)) << 1;
        if (hugeTlb[h] == vhpn + 1 && (!write || (hugeTlb[h + 1] & TLB_WRITE) != 0)) {
            return (hugeTlb[h + 1] & ~PAGE_MASK) | (va & HUGE_MASK);
        }
        misses++;
        while (true) {
            long pa = walk(va, write);
            if (pa >= 0) {
                return pa;
            }
            int r = faultOnline(va, write);
            if (r != FaultHandler.OK) {
                throw new FaultException(AddressSpace.kindOf(r), va, write);
            }
        }
    }

    /**
     * Runs the fault entry with this context offline, then brings it back online: it uses no
     * translation meanwhile, so it
     * must not hold back the grace period that an allocation under memory pressure may be
     * waiting for (its own unmaps included). Back online, the TLB is flushed only if the
     * generation moved; if it did not, nothing was freed and every cached translation is valid.
     */
    private int faultOnline(long va, boolean write) {
        offline();
        int r;
        try {
            r = faults.fault(va, write, ptlSlot);
        } finally {
            online();
        }
        return r;
    }

    /**
     * For {@link AddressSpace#fault}: resolves a fault without translating, and leaves this
     * context offline.
     */
    final int faultOffline(long va, boolean write) {
        checkThread();
        offline();
        return faults.fault(va, write, ptlSlot);
    }

    /**
     * Stops holding reclamation back until the next access; keeps the TLB, which
     * {@link #online()} flushes only if the generation moved meanwhile.
     */
    final void offline() {
        if (seenGen != NO_GEN) {
            offlineGen = seenGen;
            seenGen = NO_GEN;
        }
        slot.idleRelease();
    }

    /** Back online after {@link #offline()}: publishes the current generation. */
    private void online() {
        long gen;
        do {
            gen = mm.tlbGenAcquire();
            slot.observeVolatile(gen);
        } while (mm.tlbGenAcquire() != gen);
        if (gen != offlineGen) {
            flushTlb();
        }
        offlineGen = NO_GEN;
        seenGen = gen;
    }

    /**
     * The lockless hardware-style walk: acquire loads, each entry read once. Installs and returns
     * the translation, or -1 if an entry is missing or does not allow the access. Safe without
     * locks because this context's published generation holds back the freeing of any table it
     * can reach.
     */
    private long walk(long va, boolean write) {
        long pmdE = entries.lookupPmd(mm.pgd(), va);
        if (pmdE < 0) {
            return -1;
        }
        long pmd = entries.getAcquire(pmdE);
        if (Pte.present(pmd) && Pte.huge(pmd)) {
            if (write && !Pte.writable(pmd)) {
                return -1;
            }
            long vhpn = va >>> Entries.PMD_SHIFT;
            int h = (int) (vhpn & (HUGE_TLB_ENTRIES - 1)) << 1;
            hugeTlb[h] = vhpn + 1;
            hugeTlb[h + 1] = Entries.physical(Pte.pfn(pmd), 0) | (Pte.writable(pmd) ? TLB_WRITE : 0);
            return Entries.physical(Pte.pfn(pmd), va & HUGE_MASK);
        }
        if (!Pte.table(pmd)) {
            return -1;
        }
        long pte = entries.getAcquire(Entries.pteOffset(pmd, va));
        if (!Pte.present(pte) || (write && !Pte.writable(pte))) {
            return -1;
        }
        long vpn = va >>> Entries.PAGE_SHIFT;
        int i = (int) vpn & (TLB_ENTRIES - 1);
        readTags[i] = vpn + 1;
        writeTags[i] = Pte.writable(pte) ? vpn + 1 : 0;
        frames[i] = Entries.physical(Pte.pfn(pte), 0);
        return Entries.physical(Pte.pfn(pte), va & PAGE_MASK);
    }

    /** Drops every translation and goes offline, like {@link #offline()} without keeping the TLB. */
    final void dropTranslations() {
        flushTlb();
        seenGen = NO_GEN;
        offlineGen = NO_GEN;
        slot.idleRelease();
    }

    /** Whether {@link #markClosed()} ran. */
    final boolean isClosedContext() {
        return closed;
    }

    /** Closes the context: drops every translation; every later access fails. */
    final void markClosed() {
        closed = true;
        flushTlb();
        seenGen = NO_GEN;
    }

    /** TLB flushes so far. */
    final long flushes() {
        return flushes;
    }

    /** TLB misses so far. */
    final long misses() {
        return misses;
    }

    final void checkThread() {
        if (Thread.currentThread() != owner) {
            throw new WrongThreadException("Mmu of thread " + owner.getName() + " used by " + Thread.currentThread().getName());
        }
    }
}
