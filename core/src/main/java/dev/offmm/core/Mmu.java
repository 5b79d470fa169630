package dev.offmm.core;

import dev.offmm.core.fault.FaultHandler;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.mmu.EpochSlot;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PtlSlot;
import dev.offmm.core.pgtable.Pte;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.util.Objects;

/**
 * A thread's view of an address space, with a small software TLB: reads and writes of virtual
 * addresses at close to native speed. Obtain one with {@link AddressSpace#attach()}; it is
 * confined to the attaching thread (use from another thread throws {@link WrongThreadException}).
 *
 * <h2>Translation</h2>
 * A direct-mapped TLB of {@value #TLB_ENTRIES} 4 KiB and {@value #HUGE_TLB_ENTRIES} 2 MiB
 * translations. A hit costs a tag compare; a miss walks the page table without locks (acquire
 * loads, like a hardware walker); an absent or read-only entry enters the fault handler and
 * retries, so a write to a zero page or to a page made writable again just works.
 *
 * <h2>Shootdown and grace periods</h2>
 * Every access first compares the address space's TLB generation with the one this context last
 * saw; if it moved (munmap, mprotect, DONTNEED, COW), the TLB is flushed and the new generation
 * published in this context's {@link EpochSlot}. Frames and tables an unmap freed are reused only
 * once every context has published a generation at least as new as the unmap's, or is idle. So
 * a stale translation is only ever used by an access that was already running when the unmap
 * happened, and the frame it touches is not handed to anyone else meanwhile: a value written
 * after its page was unmapped can never appear in a live mapping.
 *
 * <h2>Idle</h2>
 * A context is <em>idle</em> after {@link #idle()} until its next access, after {@link #close()},
 * and once its thread has terminated. An idle context never holds reclamation back. A context
 * that is attached but not accessing is <em>not</em> idle (it may hold a translation from before
 * an unmap): call {@link #idle()} before blocking or parking for long, as with userspace RCU's
 * {@code rcu_thread_offline}. Under memory pressure the allocator waits a bounded time for
 * contexts to move on before it reports OOM.
 *
 * <h2>Memory ordering</h2>
 * Plain accesses ({@code get*}/{@code put*}) are plain loads and stores of the frame.
 * {@link #putLongRelease} pairs with {@link #getLongAcquire}; {@link #compareAndSetLong} and
 * {@link #getAndAddLong} are volatile read-modify-writes. Values written by one context are
 * visible to another after such a release/acquire pair, as with plain Java fields.
 */
public final class Mmu implements AutoCloseable {
    /** 4 KiB TLB entries. */
    public static final int TLB_ENTRIES = 64;
    /** 2 MiB TLB entries. */
    public static final int HUGE_TLB_ENTRIES = 16;

    private static final long PAGE_MASK = 4095;
    private static final long HUGE_MASK = (1L << 21) - 1;
    /** TLB data bit: the translation allows writes. */
    private static final long TLB_WRITE = 1;
    private static final long NO_GEN = Long.MIN_VALUE;
    /** Pages translated up front by one bulk copy step. */
    private static final int COPY_BATCH = 64;

    private static final VarHandle LONG = ValueLayout.JAVA_LONG_UNALIGNED.varHandle().withInvokeExactBehavior();
    private static final VarHandle INT = ValueLayout.JAVA_INT_UNALIGNED.varHandle().withInvokeExactBehavior();
    private static final VarHandle BYTE = ValueLayout.JAVA_BYTE.varHandle().withInvokeExactBehavior();
    private static final VarHandle ATOMIC_LONG = ValueLayout.JAVA_LONG.varHandle().withInvokeExactBehavior();

    private final AddressSpace as;
    private final Mm mm;
    private final Thread owner;
    private final MemorySegment region;
    private final EpochSlot slot;
    private final PtlSlot ptlSlot = new PtlSlot();
    /** Direct-mapped TLB: tag {@code vpn + 1} (0 is empty) for reads, for writes, and the frame offset. */
    private final long[] readTags = new long[TLB_ENTRIES];
    private final long[] writeTags = new long[TLB_ENTRIES];
    private final long[] frames = new long[TLB_ENTRIES];
    private final long[] hugeTlb = new long[HUGE_TLB_ENTRIES * 2];
    /** Physical offsets of the pages of one bulk-copy batch. */
    private final long[] copyPa = new long[COPY_BATCH];
    private long seenGen = NO_GEN;
    /** The generation the TLB was valid for when the context went offline, or NO_GEN. */
    private long offlineGen = NO_GEN;
    private long flushes;
    private long misses;
    private boolean closed;

    Mmu(AddressSpace as, Mm mm) {
        this.as = as;
        this.mm = mm;
        this.owner = Thread.currentThread();
        this.region = mm.memory.region();
        this.slot = mm.reclaimer.register();
    }

    // ---- single accesses

    /** Reads the byte at {@code va}. */
    public byte getByte(long va) {
        return (byte) BYTE.get(region, translate(va, false));
    }

    /** Writes the byte at {@code va}. */
    public void putByte(long va, byte value) {
        BYTE.set(region, translate(va, true), value);
    }

    /** Reads the int at {@code va} (little-endian, any alignment). */
    public int getInt(long va) {
        if ((va & PAGE_MASK) > PAGE_MASK - 3) {
            return (int) crossPageGet(va, Integer.BYTES);
        }
        return (int) INT.get(region, translate(va, false));
    }

    /** Writes the int at {@code va} (little-endian, any alignment). */
    public void putInt(long va, int value) {
        if ((va & PAGE_MASK) > PAGE_MASK - 3) {
            crossPagePut(va, value, Integer.BYTES);
            return;
        }
        INT.set(region, translate(va, true), value);
    }

    /** Reads the long at {@code va} (little-endian, any alignment). */
    public long getLong(long va) {
        if ((va & PAGE_MASK) > PAGE_MASK - 7) {
            return crossPageGet(va, Long.BYTES);
        }
        return (long) LONG.get(region, translate(va, false));
    }

    /** Writes the long at {@code va} (little-endian, any alignment). */
    public void putLong(long va, long value) {
        if ((va & PAGE_MASK) > PAGE_MASK - 7) {
            crossPagePut(va, value, Long.BYTES);
            return;
        }
        LONG.set(region, translate(va, true), value);
    }

    /** Load-acquire of the 8-aligned long at {@code va}; pairs with {@link #putLongRelease}. */
    public long getLongAcquire(long va) {
        return (long) ATOMIC_LONG.getAcquire(region, translate(aligned8(va), false));
    }

    /** Store-release of the 8-aligned long at {@code va}; pairs with {@link #getLongAcquire}. */
    public void putLongRelease(long va, long value) {
        ATOMIC_LONG.setRelease(region, translate(aligned8(va), true), value);
    }

    /** Volatile compare-and-set of the 8-aligned long at {@code va}. */
    public boolean compareAndSetLong(long va, long expected, long value) {
        return (boolean) ATOMIC_LONG.compareAndSet(region, translate(aligned8(va), true), expected, value);
    }

    /** Volatile get-and-add of the 8-aligned long at {@code va}; returns the old value. */
    public long getAndAddLong(long va, long delta) {
        return (long) ATOMIC_LONG.getAndAdd(region, translate(aligned8(va), true), delta);
    }

    private static long aligned8(long va) {
        if ((va & 7) != 0) {
            throw new IllegalArgumentException("va=0x" + Long.toHexString(va)
                    + " (expected 8-byte alignment for an atomic access)");
        }
        return va;
    }

    // ---- bulk accesses

    /** Copies {@code len} bytes at {@code va} into {@code dst[off ..]}, crossing pages as needed. */
    public void read(long va, byte[] dst, int off, int len) {
        Objects.checkFromIndexSize(off, len, dst.length);
        copy(va, MemorySegment.ofArray(dst), off, len, false);
    }

    /** Copies {@code src[off .. off+len)} to {@code va}, crossing pages as needed. */
    public void write(long va, byte[] src, int off, int len) {
        Objects.checkFromIndexSize(off, len, src.length);
        copy(va, MemorySegment.ofArray(src), off, len, true);
    }

    /** Copies all of {@code dst.byteSize()} bytes at {@code va} into {@code dst}. */
    public void read(long va, MemorySegment dst) {
        copy(va, dst, 0, dst.byteSize(), false);
    }

    /** Copies all of {@code src} to {@code va}. */
    public void write(long va, MemorySegment src) {
        copy(va, src, 0, src.byteSize(), true);
    }

    /**
     * Bulk copy in batches of up to {@value #COPY_BATCH} pages: translate every page of a batch
     * first (faulting as needed, and starting the batch over if the generation moved meanwhile),
     * then stream the bytes. The whole batch is one access: its translations stay safe to use
     * until the next access publishes a newer generation.
     */
    private void copy(long va, MemorySegment buf, long off, long len, boolean write) {
        if (va < 0 || len > AddressSpace.USER_END - va) {
            throw new FaultException(FaultException.Kind.MAPERR, va < 0 ? va : AddressSpace.USER_END, write);
        }
        while (len > 0) {
            int pages = 0;
            long batchLen = 0;
            long gen;
            do {
                gen = seenGen;
                pages = 0;
                batchLen = 0;
                long a = va;
                while (pages < COPY_BATCH && batchLen < len) {
                    long chunk = Math.min(len - batchLen, 4096 - (a & PAGE_MASK));
                    copyPa[pages++] = translate(a, write);
                    a += chunk;
                    batchLen += chunk;
                }
            } while (seenGen != gen);
            long a = va;
            long o = off;
            for (int p = 0; p < pages; p++) {
                long chunk = Math.min(va + batchLen - a, 4096 - (a & PAGE_MASK));
                if (write) {
                    MemorySegment.copy(buf, o, region, copyPa[p], chunk);
                } else {
                    MemorySegment.copy(region, copyPa[p], buf, o, chunk);
                }
                a += chunk;
                o += chunk;
            }
            va += batchLen;
            off += batchLen;
            len -= batchLen;
        }
    }

    private long crossPageGet(long va, int bytes) {
        long v = 0;
        for (int i = 0; i < bytes; i++) {
            v |= (getByte(va + i) & 0xffL) << (8 * i);
        }
        return v;
    }

    private void crossPagePut(long va, long value, int bytes) {
        for (int i = 0; i < bytes; i++) {
            translate(va + i, true);
        }
        for (int i = 0; i < bytes; i++) {
            putByte(va + i, (byte) (value >>> (8 * i)));
        }
    }

    // ---- pinning

    /**
     * Pins the page holding {@code va} (get_user_pages): faults it in if needed (for writing if
     * {@code write}) and returns its frame's bytes. The frame stays alive until the pinned page
     * is closed, even if the page is unmapped meanwhile; then it no longer belongs to the mapping.
     */
    public PinnedPage pin(long va, boolean write) {
        checkThread();
        return as.pin(va, write, ptlSlot);
    }

    // ---- translation

    /**
     * The physical offset of {@code va} for a read or a write. The hot path: a generation check
     * and a tag compare, no allocation.
     */
    private long translate(long va, boolean write) {
        if (Thread.currentThread() != owner || mm.tlbGen() != seenGen) {
            syncSlowPath();
        }
        long vpn = va >>> 12;
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
        if (as.isClosed()) {
            slot.idle();
            throw new IllegalStateException("address space is closed");
        }
        // Publish the generation, then re-read it: the volatile store orders before the load, so
        // either the unmapper's scan sees our publication or we see its bump (Dekker pairing).
        online();
    }

    private void flushTlb() {
        java.util.Arrays.fill(readTags, 0);
        java.util.Arrays.fill(writeTags, 0);
        java.util.Arrays.fill(hugeTlb, 0);
        flushes++;
    }

    private long translateSlowPath(long va, boolean write) {
        if (va < 0 || va >= AddressSpace.USER_END) {
            throw new FaultException(FaultException.Kind.MAPERR, va, write);
        }
        long vhpn = va >>> 21;
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
            int r = faultIdle(va, write);
            if (r != FaultHandler.OK) {
                throw new FaultException(AddressSpace.kindOf(r), va, write);
            }
        }
    }

    /**
     * Runs the fault handler with this context offline: it uses no translation meanwhile, so it
     * must not hold back the grace period that an allocation under memory pressure may be
     * waiting for (its own unmaps included). Back online, the TLB is flushed only if the
     * generation moved; if it did not, nothing was freed and every cached translation is valid.
     */
    private int faultIdle(long va, boolean write) {
        offline();
        int r;
        try {
            r = as.faultResult(va, write, ptlSlot);
        } finally {
            online();
        }
        return r;
    }

    /**
     * Stops holding reclamation back until the next access; keeps the TLB, which
     * {@link #online()} flushes only if the generation moved meanwhile.
     */
    void offline() {
        if (seenGen != NO_GEN) {
            offlineGen = seenGen;
            seenGen = NO_GEN;
        }
        slot.idle();
    }

    /** Back online after {@link #offline()}: publishes the current generation. */
    private void online() {
        long gen;
        do {
            gen = mm.tlbGen();
            slot.observe(gen);
        } while (mm.tlbGen() != gen);
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
        long pgd = mm.entries.getAcquire(Entries.entry(mm.pgdPfn, Entries.index(va, Entries.PGDIR_SHIFT)));
        if (!Pte.present(pgd)) {
            return -1;
        }
        long pud = mm.entries.getAcquire(Entries.entry(Pte.pfn(pgd), Entries.index(va, Entries.PUD_SHIFT)));
        if (!Pte.present(pud)) {
            return -1;
        }
        long pmd = mm.entries.getAcquire(Entries.entry(Pte.pfn(pud), Entries.index(va, Entries.PMD_SHIFT)));
        if (!Pte.present(pmd)) {
            return -1;
        }
        if (Pte.huge(pmd)) {
            if (write && !Pte.writable(pmd)) {
                return -1;
            }
            long vhpn = va >>> 21;
            int h = (int) (vhpn & (HUGE_TLB_ENTRIES - 1)) << 1;
            hugeTlb[h] = vhpn + 1;
            hugeTlb[h + 1] = (Pte.pfn(pmd) << 12) | (Pte.writable(pmd) ? TLB_WRITE : 0);
            return (Pte.pfn(pmd) << 12) | (va & HUGE_MASK);
        }
        long pte = mm.entries.getAcquire(Entries.entry(Pte.pfn(pmd), Entries.index(va, Entries.PAGE_SHIFT)));
        if (!Pte.present(pte) || (write && !Pte.writable(pte))) {
            return -1;
        }
        long vpn = va >>> 12;
        int i = (int) vpn & (TLB_ENTRIES - 1);
        readTags[i] = vpn + 1;
        writeTags[i] = Pte.writable(pte) ? vpn + 1 : 0;
        frames[i] = Pte.pfn(pte) << 12;
        return (Pte.pfn(pte) << 12) | (va & PAGE_MASK);
    }

    // ---- lifecycle

    /**
     * Goes idle: drops every translation and stops holding reclamation back until the next
     * access (which catches up by itself). Call it before blocking for long.
     */
    public void idle() {
        checkThread();
        flushTlb();
        seenGen = NO_GEN;
        offlineGen = NO_GEN;
        slot.idle();
        // Going offline may end a grace period: release what it held back.
        mm.reclaimer.poll();
    }

    /** TLB flushes so far (shootdowns seen, plus idles). */
    public long tlbFlushes() {
        return flushes;
    }

    /** TLB misses so far (walks). */
    public long tlbMisses() {
        return misses;
    }

    /** Detaches; idempotent. Must run on the owner thread. */
    @Override
    public void close() {
        checkThread();
        if (!closed) {
            closed = true;
            flushTlb();
            seenGen = NO_GEN;
            mm.reclaimer.unregister(slot);
            as.detached(this);
        }
    }

    private void checkThread() {
        if (Thread.currentThread() != owner) {
            throw new WrongThreadException("Mmu of thread " + owner.getName() + " used by " + Thread.currentThread().getName());
        }
    }
}
