package dev.offmm.core;

import dev.offmm.core.fault.FaultEntry;
import dev.offmm.core.fault.FaultHandler;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.mm.VmCounters;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PtlSlot;
import dev.offmm.core.pgtable.Pte;
import dev.offmm.core.reclaim.EpochSlot;
import dev.offmm.core.reclaim.Reclaimer;
import dev.offmm.core.vma.Vma;
import dev.offmm.offheap.PhysicalMemory;

import java.lang.invoke.VarHandle;
import java.util.Arrays;

/**
 * The translating half of an {@link Mmu}: the software TLB, the lockless walk, the fault entry
 * and the context's place in the grace-period protocol. The state lives in the fields of the
 * {@code Mmu} object itself, so a TLB hit loads the tag array straight from the context.
 * Confined to the owner thread.
 *
 * <h2>The access window</h2>
 * {@link #translate} enters an access: it publishes the generation its TLB is valid for in its
 * {@link EpochSlot} (an opaque store), then loads the address space's generation (acquire); if
 * that moved, the TLB is flushed first. The caller touches the frame and then {@link #exit()}s
 * (a release store of IDLE). Between accesses the context holds nothing back; frames and tables
 * unmapped meanwhile may be freed, and the next access's generation check drops every
 * translation that could name them. A fault runs outside the window (its allocation may wait for
 * a grace period) and re-enters after; while it runs the slot shows {@link EpochSlot#QUIESCENT},
 * and the access that follows fences once, so an unmap meanwhile needs no IPI for this context.
 * The updater's side, and why the store and the load stay ordered: {@link EpochSlot#enterOpaque}.
 */
abstract sealed class TlbContext permits Mmu {
    /** Sets of the 4 KiB TLB. */
    static final int TLB_SETS = 256;
    /** Ways per set. */
    static final int TLB_WAYS = 2;
    /** 4 KiB TLB entries: 512, 2 MiB of reach; 16 KiB of arrays, one 64-byte line per set. */
    static final int TLB_ENTRIES = TLB_SETS * TLB_WAYS;
    /**
     * 2 MiB TLB entries, direct-mapped: 8 GiB of reach in 32 KiB, one long each (tag and frame
     * packed, so a probe is one load); epoch-tagged, so a flush clears nothing.
     */
    static final int HUGE_TLB_ENTRIES = 4096;

    private static final long PAGE_MASK = Entries.PAGE_MASK;
    private static final long HUGE_MASK = Entries.PMD_MASK;
    /** TLB data bit: the translation allows writes. */
    private static final long TLB_WRITE = 1;
    private static final long NO_GEN = Long.MIN_VALUE;
    /**
     * The slot shows {@link EpochSlot#QUIESCENT}: the next access publishes this (older than any
     * generation, so it holds everything back), fails the generation check and fences in
     * {@link #resync}, which keeps the TLB if the generation saved by {@link #quiesce} still holds.
     */
    private static final long QUIESCED_GEN = Long.MIN_VALUE + 1;
    /** Longs per set: way 0's read tag, write tag, frame, way 1's, the victim, padding (64 bytes). */
    private static final int SET_SHIFT = 3;
    private static final int WAY1 = 3;
    private static final int VICTIM = 6;
    /**
     * The 2 MiB entries' and the walk caches' tags carry the flush epoch above bit {@value}, so a
     * flush drops them at once. The 4 KiB entries keep plain tags ({@code vpn + 1}) for the hot
     * compare; a flush clears the sets filled since the last one (all if there were many).
     */
    private static final int EPOCH_SHIFT = 36;
    /** Filled sets a flush clears one by one; beyond this it clears the whole array. */
    private static final int TRACKED_FILLS = 64;
    /**
     * A 2 MiB entry: {@code key << HUGE_KEY_SHIFT | frame offset | TLB_WRITE}. The frame offset
     * is below 2^36 ({@link PhysicalMemory#MAX_BYTES}) with its low 21 bits clear; the key is
     * {@code (vhpn >>> HUGE_INDEX_BITS) + hugeTagBase}: the 2 MiB page number's bits the index
     * does not give (14 of a 47-bit user address), the epoch above them, plus 1.
     */
    private static final int HUGE_KEY_SHIFT = 36;
    private static final int HUGE_INDEX_BITS = Integer.numberOfTrailingZeros(HUGE_TLB_ENTRIES);
    private static final int HUGE_EPOCH_SHIFT =
            Long.numberOfTrailingZeros(Entries.USER_END) - Entries.PMD_SHIFT - HUGE_INDEX_BITS;
    private static final long HUGE_FRAME_MASK = ((1L << HUGE_KEY_SHIFT) - 1) & ~HUGE_MASK;
    /**
     * After this many flushes the arrays are cleared and the epoch starts again: the 2 MiB key
     * keeps {@code 63 - HUGE_KEY_SHIFT - HUGE_EPOCH_SHIFT} bits of it (13, with one bit spare for
     * the key's {@code + 1}; a clear of 36 KiB every 8,192 flushes).
     */
    static final long MAX_EPOCH = (1L << (64 - HUGE_KEY_SHIFT - HUGE_EPOCH_SHIFT - 1)) - 1;
    private static final boolean FENCE = Reclaimer.READERS_FENCE;

    static {
        if (PhysicalMemory.MAX_BYTES > 1L << HUGE_KEY_SHIFT) {
            throw new AssertionError("a 2 MiB TLB entry holds frame offsets below 2^" + HUGE_KEY_SHIFT);
        }
    }

    final Mm mm;
    final Reclaimer reclaimer;
    private final Entries entries;
    private final FaultEntry faults;
    private final Thread owner;
    /** This context's counters (the fault path counts here, never in a shared line) and its lock slot. */
    private final VmCounters.Local counts;
    private final PtlSlot ptlSlot;
    /**
     * The 4 KiB TLB, 2-way set-associative, one array so a hit touches one object and one line:
     * set {@code s} starts at {@code e = s << SET_SHIFT}; each way holds the read tag
     * ({@code vpn + 1}, 0 empty), the write tag (set only for writable translations) and the
     * frame offset; {@code e + VICTIM} names the way the next fill replaces.
     */
    private final long[] tlb = new long[TLB_SETS << SET_SHIFT];
    private final int[] filledSets = new int[TRACKED_FILLS];
    private int fills;
    /** 2 MiB entries, packed: see {@code HUGE_KEY_SHIFT}; 0 is empty (every key is at least 1). */
    private final long[] hugeTlb = new long[HUGE_TLB_ENTRIES];
    /** The paging-structure caches; {@code tagBase}: 1 (0 stays empty) plus the flush epoch. */
    private final WalkCache walkCache;
    private long tagBase = 1;
    /** The 2 MiB entries' key base: 1 plus the flush epoch above the page number's bits. */
    private long hugeTagBase = 1;
    private long epoch;
    /** This context's slot in the reclaimer; a detached one once the context is closed. */
    private EpochSlot slot;
    /** The generation the TLB is valid for; NO_GEN: the next access flushes it; or QUIESCED_GEN. */
    private long seenGen = NO_GEN;
    /** While {@code seenGen} is QUIESCED_GEN: the generation the TLB is valid for. */
    private long quiescedGen = NO_GEN;
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
        this.counts = mm.counters().local();
        this.ptlSlot = new PtlSlot(counts, Vma.nextStripe());
        this.slot = reclaimer.register();
        this.walkCache = new WalkCache(mm, entries);
    }

    /** The generation this context's translations are valid for; read by {@link BulkCopy}. */
    final long generation() {
        return seenGen;
    }

    /**
     * Enters an access (or stays in it) and returns the physical offset of {@code va} for a read
     * or a write. The hot path: a store, a generation check and a tag compare, no allocation.
     * When it returns, the caller touches the frame and then ends the access with {@link #exit()};
     * when it throws, it has left the access itself.
     *
     * @throws WrongThreadException from another thread than the owner, which it leaves untouched
     */
    final long translate(long va, boolean write) {
        if (Thread.currentThread() != owner) {
            throw wrongThread();
        }
        enter();
        long vpn = va >>> Entries.PAGE_SHIFT;
        long tag = vpn + 1;
        int e = ((int) vpn & (TLB_SETS - 1)) << SET_SHIFT;
        int w = write ? 1 : 0;
        long[] t = tlb;
        // A write hits only a writable translation: the write tag is set for those alone, so the
        // permission check is the tag compare itself (write is a constant once inlined).
        if (t[e + w] == tag) {
            return t[e + 2] | (va & PAGE_MASK);
        }
        // Then the 2 MiB entry, inline too (with huge pages every access misses the 4 KiB ways):
        // one load. No bounds check: a non-user address has page-number bits above the 14 a key
        // holds, so its key is larger than any a fill of this epoch stored, and an older epoch's
        // key is smaller than any this epoch computes.
        long vhpn = va >>> Entries.PMD_SHIFT;
        long he = hugeTlb[(int) vhpn & (HUGE_TLB_ENTRIES - 1)];
        if (he >>> HUGE_KEY_SHIFT == (vhpn >>> HUGE_INDEX_BITS) + hugeTagBase && (!write || (he & TLB_WRITE) != 0)) {
            return (he & HUGE_FRAME_MASK) | (va & HUGE_MASK);
        }
        // Way 1 is looked at out of line: the inlined hit path stays as small as a direct-mapped one.
        return translateSlowPath(va, write);
    }

    /**
     * Publishes the access, then checks the generation: the opaque store and the acquire load
     * stay in program order (see {@link EpochSlot#enterOpaque}); {@code membarrier} on the
     * updater's side, or the fence here where there is none, orders them for the processor.
     * After {@link #quiesce} the published value is QUIESCED_GEN, the check fails, and
     * {@link #resync} fences: the hot path carries no flag for it.
     */
    private void enter() {
        slot.enterOpaque(seenGen);
        if (FENCE) {
            VarHandle.fullFence();
        }
        if (mm.tlbGenAcquire() != seenGen) {
            resync();
        }
    }

    /**
     * Ends the access: a release store of IDLE, after every load and store of it. Only after a
     * {@link #translate} that returned (so only on the owner thread).
     */
    final void exit() {
        slot.exitRelease();
    }

    /**
     * The generation moved, or this context is new, idle, quiesced or closed. The value
     * {@link #enter} published (NO_GEN or QUIESCED_GEN, older than any generation) holds every
     * grace period back; after a full fence, which a slot coming back from QUIESCENT or IDLE
     * needs because updaters did not send it an IPI, the generation is loaded again. The TLB
     * survives a quiescent stretch in which it did not move; otherwise every translation goes.
     * Raising the published value needs no further barrier: the value published first, older
     * than this one, already covered the check.
     */
    private void resync() {
        if (closed) {
            throw new IllegalStateException("this Mmu is closed");
        }
        if (mm.isClosed()) {
            slot.exitRelease();
            throw new IllegalStateException("address space is closed");
        }
        VarHandle.fullFence();
        long gen = mm.tlbGenAcquire();
        if (seenGen != QUIESCED_GEN || quiescedGen != gen) {
            flushTlb();
        }
        seenGen = gen;
        slot.enterOpaque(gen);
    }

    /**
     * Drops every translation and cached table: the sets filled since the last flush are
     * cleared (all of them if more than {@code TRACKED_FILLS}), and a new epoch drops the rest.
     */
    final void flushTlb() {
        if (fills > TRACKED_FILLS) {
            Arrays.fill(tlb, 0);
        } else {
            for (int i = 0; i < fills; i++) {
                Arrays.fill(tlb, filledSets[i], filledSets[i] + (1 << SET_SHIFT), 0L);
            }
        }
        fills = 0;
        if (++epoch > MAX_EPOCH) {
            Arrays.fill(hugeTlb, 0);
            walkCache.clear();
            epoch = 0;
        }
        tagBase = (epoch << EPOCH_SHIFT) + 1;
        hugeTagBase = (epoch << HUGE_EPOCH_SHIFT) + 1;
        flushes++;
    }

    private long translateSlowPath(long va, boolean write) {
        long vpn = va >>> Entries.PAGE_SHIFT;
        int set = ((int) vpn & (TLB_SETS - 1)) << SET_SHIFT;
        if (tlb[set + WAY1 + (write ? 1 : 0)] == vpn + 1) {
            return tlb[set + WAY1 + 2] | (va & PAGE_MASK);
        }
        if (va < 0 || va >= Entries.USER_END) {
            slot.exitRelease();
            throw new FaultException(FaultException.Kind.MAPERR, va, write);
        }
        misses++;
        while (true) {
            long pa;
            try {
                pa = walk(va, write);
            } catch (RuntimeException e) {
                // Only a memory closed under the walk gets here; leave the access, never hold it.
                slot.exitRelease();
                throw e;
            }
            if (pa >= 0) {
                return pa;
            }
            int r = faultOutside(va, write);
            if (r != FaultHandler.OK) {
                slot.exitRelease();
                throw new FaultException(AddressSpace.kindOf(r), va, write);
            }
        }
    }

    /**
     * Runs the fault entry outside the access window, then enters again (checking the
     * generation): the fault uses no translation, and its allocation may wait for a grace period
     * that this context must not hold back. Translations taken before it stay usable only if the
     * generation did not move, which {@link BulkCopy} checks.
     */
    private int faultOutside(long va, boolean write) {
        quiesce();
        int r = faults.fault(va, write, ptlSlot);
        enter();
        return r;
    }

    /**
     * Outside an access, for a slow path: publishes {@link EpochSlot#QUIESCENT} (release) and
     * fences the next access's publication, so updaters need no process-wide barrier to know
     * this context holds nothing. Owner thread only, never inside an access.
     */
    final void quiesce() {
        slot.quiesceRelease();
        if (seenGen != QUIESCED_GEN) {
            quiescedGen = seenGen;
            seenGen = QUIESCED_GEN;
        }
    }

    /** Resolves a fault without translating, outside any access; {@code unshare}: a pin's (FAULT_FLAG_UNSHARE). */
    final int faultOnly(long va, boolean write, boolean unshare) {
        checkThread();
        return unshare ? faults.faultUnshare(va, ptlSlot) : faults.fault(va, write, ptlSlot);
    }

    /**
     * The lockless hardware-style walk: acquire loads, each entry read once. Installs and returns
     * the translation, or -1 if an entry is missing or does not allow the access. Safe without
     * locks because it runs inside an access, whose published generation holds back the freeing
     * of any table it can reach.
     */
    private long walk(long va, boolean write) {
        long pmd = walkCache.pmd(va, tagBase);
        if (Pte.present(pmd) && Pte.huge(pmd)) {
            if (write && !Pte.writable(pmd)) {
                return -1;
            }
            long vhpn = va >>> Entries.PMD_SHIFT;
            long frame = Entries.physical(Pte.pfn(pmd), 0);
            hugeTlb[(int) vhpn & (HUGE_TLB_ENTRIES - 1)] = ((vhpn >>> HUGE_INDEX_BITS) + hugeTagBase) << HUGE_KEY_SHIFT
                    | frame | (Pte.writable(pmd) ? TLB_WRITE : 0);
            return frame | (va & HUGE_MASK);
        }
        if (!Pte.table(pmd)) {
            return -1;
        }
        long pte = entries.getAcquire(Entries.pteOffset(pmd, va));
        // As on x86 the PMD's W bit limits the leaf: a shared table's PMD entry has none.
        boolean writable = Pte.writable(pte) && Pte.writable(pmd);
        if (!Pte.present(pte) || (write && !writable)) {
            return -1;
        }
        fill(va >>> Entries.PAGE_SHIFT, Entries.physical(Pte.pfn(pte), 0), writable);
        return Entries.physical(Pte.pfn(pte), va & PAGE_MASK);
    }

    /**
     * Installs a translation of page {@code vpn}: in the way that already holds the page if one
     * does (a permission change must not leave two entries), else in an empty way, else in the
     * set's victim, which then alternates (a cheap not-most-recently-filled rule).
     */
    private void fill(long vpn, long frame, boolean writable) {
        long tag = vpn + 1;
        int e = ((int) vpn & (TLB_SETS - 1)) << SET_SHIFT;
        long[] t = tlb;
        if (fills < TRACKED_FILLS) {
            filledSets[fills] = e;
        }
        fills++;
        int way;
        if (t[e] == tag) {
            way = 0;
        } else if (t[e + WAY1] == tag) {
            way = WAY1;
        } else if (t[e] == 0) {
            way = 0;
        } else if (t[e + WAY1] == 0) {
            way = WAY1;
        } else {
            way = (int) t[e + VICTIM];
            t[e + VICTIM] = way == 0 ? WAY1 : 0;
        }
        t[e + way] = tag;
        t[e + way + 1] = writable ? tag : 0;
        t[e + way + 2] = frame;
    }

    /**
     * Drops every translation (the next access starts with an empty TLB) and hands the pages its
     * copy-on-write faults replaced to the reclaimer, so an idle context hides none.
     */
    final void dropTranslations() {
        flushTlb();
        seenGen = NO_GEN;
        faults.retireReplaced(ptlSlot);
    }

    /** Whether {@link #markClosed()} ran. */
    final boolean isClosedContext() {
        return closed;
    }
    /**
     * Closes the context: drops every translation and leaves the reclaimer, whose slot may then
     * serve another context; every later access fails.
     */
    final void markClosed() {
        closed = true;
        dropTranslations();
        EpochSlot old = slot;
        slot = EpochSlot.detached();
        reclaimer.unregister(old);
        counts.fold();
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
            throw wrongThread();
        }
    }

    private WrongThreadException wrongThread() {
        return new WrongThreadException("Mmu of thread " + owner.getName() + " used by " + Thread.currentThread().getName());
    }
}
