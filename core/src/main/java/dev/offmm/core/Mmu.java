package dev.offmm.core;

import dev.offmm.core.fault.FaultEntry;
import dev.offmm.core.fault.FaultHandler;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.reclaim.EpochSlot;
import dev.offmm.core.reclaim.Reclaimer;
import dev.offmm.offheap.host.Backoff;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Objects;

/**
 * A thread's view of an address space, with a small software TLB: reads and writes of virtual
 * addresses at close to native speed. Obtain one with {@link AddressSpace#attach()}; it is
 * confined to the attaching thread (use from another thread throws {@link WrongThreadException}).
 * The casual accesses of {@link AddressSpace} run through a context of this class too, so there
 * is one translation path and one fault entry.
 *
 * <h2>Translation</h2>
 * A 2-way set-associative TLB of {@value #TLB_ENTRIES} 4 KiB and {@value #HUGE_TLB_ENTRIES} 2 MiB
 * translations. A hit costs a tag compare; a miss walks the page table without locks (acquire
 * loads, like a hardware walker); an absent or read-only entry enters the fault handler and
 * retries, so a write to a zero page or to a page made writable again just works. A store that
 * crosses a page boundary translates both pages first: it happens whole or not at all.
 *
 * <h2>Shootdown and grace periods</h2>
 * Every access publishes, in this context's {@link EpochSlot}, the TLB generation its
 * translations are valid for, then compares it with the address space's; if that moved (munmap,
 * mprotect, DONTNEED, COW), the TLB is flushed first. When the access ends, the context publishes
 * that it is in none. Frames and tables an unmap freed are reused only once no access that began
 * before the unmap is still running. So a stale translation is only ever used by an access that
 * was already running when the unmap happened, and the frame it touches is not handed to anyone
 * else meanwhile: a value written after its page was unmapped can never appear in a live mapping.
 *
 * <h2>Nothing to remember</h2>
 * Between accesses a context holds nothing back, whatever its thread does: park, block, compute
 * or die. Only an access in progress (a single load or store, or one bulk copy) delays the
 * freeing of what an unmap cleared. {@link #idle()} is a hint that drops the cached translations;
 * no thread has to call it. {@link #close()} lets the context's slot serve another.
 *
 * <h2>Memory ordering</h2>
 * Plain accesses ({@code get*}/{@code put*}) are plain loads and stores of the frame.
 * {@link #putLongRelease} pairs with {@link #getLongAcquire}; {@link #compareAndSetLong} and
 * {@link #getAndAddLong} are volatile read-modify-writes. Values written by one context are
 * visible to another after such a release/acquire pair, as with plain Java fields.
 */
public final class Mmu extends TlbContext implements AutoCloseable {
    /** 4 KiB TLB entries. */
    public static final int TLB_ENTRIES = TlbContext.TLB_ENTRIES;
    /** 2 MiB TLB entries. */
    public static final int HUGE_TLB_ENTRIES = TlbContext.HUGE_TLB_ENTRIES;

    private static final long PAGE_MASK = Entries.PAGE_MASK;

    /**
     * The attachment this context is registered in ({@link AddressSpace#attach()}), or null for a
     * casual context. Nothing else here may reach the {@code AddressSpace} or its thread-locals:
     * a context is a thread-local value, and a value that referenced its own key would keep it
     * (and the whole address space) alive for as long as the thread lives. An attached context
     * does reference its key, which {@link #close()} removes.
     */
    private final ThreadLocal<Mmu> attachment;
    private final MemorySegment region;
    private final BulkCopy bulk;
    private final PinGuard pins;

    Mmu(Mm mm, MemorySegment region, Entries entries, FaultEntry faults, Reclaimer reclaimer,
        ThreadLocal<Mmu> attachment) {
        super(mm, entries, faults, reclaimer);
        this.attachment = attachment;
        this.region = region;
        this.bulk = new BulkCopy(this, region);
        this.pins = new PinGuard(mm, entries);
    }

    // ---- single accesses

    /** {@return the byte at {@code va}}
     * @param va a user virtual address */
    public byte getByte(long va) {
        long pa = translate(va, false);
        try {
            return FrameBytes.getBytePlain(region, pa);
        } finally {
            exit();
        }
    }

    /** Writes the byte at {@code va}.
     * @param va a user virtual address
     * @param value the byte */
    public void putByte(long va, byte value) {
        long pa = translate(va, true);
        try {
            FrameBytes.setBytePlain(region, pa, value);
        } finally {
            exit();
        }
    }

    /** {@return the int at {@code va} (little-endian, any alignment)}
     * @param va a user virtual address */
    public int getInt(long va) {
        if ((va & PAGE_MASK) > PAGE_MASK - (Integer.BYTES - 1)) {
            return (int) bulk.crossPageGet(va, Integer.BYTES);
        }
        long pa = translate(va, false);
        try {
            return FrameBytes.getIntPlain(region, pa);
        } finally {
            exit();
        }
    }

    /** Writes the int at {@code va} (little-endian, any alignment).
     * @param va a user virtual address
     * @param value the int */
    public void putInt(long va, int value) {
        if ((va & PAGE_MASK) > PAGE_MASK - (Integer.BYTES - 1)) {
            bulk.crossPagePut(va, value, Integer.BYTES);
            return;
        }
        long pa = translate(va, true);
        try {
            FrameBytes.setIntPlain(region, pa, value);
        } finally {
            exit();
        }
    }

    /** {@return the long at {@code va} (little-endian, any alignment)}
     * @param va a user virtual address */
    public long getLong(long va) {
        if ((va & PAGE_MASK) > PAGE_MASK - (Long.BYTES - 1)) {
            return bulk.crossPageGet(va, Long.BYTES);
        }
        long pa = translate(va, false);
        try {
            return FrameBytes.getLongPlain(region, pa);
        } finally {
            exit();
        }
    }

    /** Writes the long at {@code va} (little-endian, any alignment).
     * @param va a user virtual address
     * @param value the long */
    public void putLong(long va, long value) {
        if ((va & PAGE_MASK) > PAGE_MASK - (Long.BYTES - 1)) {
            bulk.crossPagePut(va, value, Long.BYTES);
            return;
        }
        long pa = translate(va, true);
        try {
            FrameBytes.setLongPlain(region, pa, value);
        } finally {
            exit();
        }
    }

    /** {@return the 8-aligned long at {@code va}, loaded with acquire; pairs with {@link #putLongRelease}}
     * @param va a user virtual address, 8-byte aligned */
    public long getLongAcquire(long va) {
        long pa = translate(FrameBytes.aligned8(va), false);
        try {
            return FrameBytes.getLongAcquire(region, pa);
        } finally {
            exit();
        }
    }

    /** Store-release of the 8-aligned long at {@code va}; pairs with {@link #getLongAcquire}.
     * @param va a user virtual address, 8-byte aligned
     * @param value the long */
    public void putLongRelease(long va, long value) {
        long pa = translate(FrameBytes.aligned8(va), true);
        try {
            FrameBytes.setLongRelease(region, pa, value);
        } finally {
            exit();
        }
    }

    /** Volatile compare-and-set of the 8-aligned long at {@code va}.
     * @param va a user virtual address, 8-byte aligned
     * @param expected the value it must hold
     * @param value the value to store if it does
     * @return whether it held {@code expected} and now holds {@code value} */
    public boolean compareAndSetLong(long va, long expected, long value) {
        long pa = translate(FrameBytes.aligned8(va), true);
        try {
            return FrameBytes.casLong(region, pa, expected, value);
        } finally {
            exit();
        }
    }

    /** Volatile get-and-add of the 8-aligned long at {@code va}.
     * @param va a user virtual address, 8-byte aligned
     * @param delta the amount to add
     * @return the value before the add */
    public long getAndAddLong(long va, long delta) {
        long pa = translate(FrameBytes.aligned8(va), true);
        try {
            return FrameBytes.getAndAddLong(region, pa, delta);
        } finally {
            exit();
        }
    }

    // ---- bulk accesses: if one faults, it has copied every byte before the first page it could
    // ---- not access and none after, and the FaultException's bytesCopied() says how many.

    /**
     * Copies {@code len} bytes at {@code va} into {@code dst[off ..]}, crossing pages as needed.
     *
     * @param va the first user virtual address to read
     * @param dst the destination
     * @param off the first index of {@code dst} written
     * @param len the number of bytes
     * @throws IndexOutOfBoundsException if {@code [off, off + len)} is not within {@code dst}
     * @throws FaultException at the first page that cannot be read, after copying every byte before it
     */
    public void read(long va, byte[] dst, int off, int len) {
        Objects.checkFromIndexSize(off, len, dst.length);
        long room = Entries.PAGE_SIZE - Entries.pageOffset(va);
        if (len > 0 && len <= room) {
            // Within one page: one translation and one copy, no batch, no array segment.
            long pa = translate(va, false);
            try {
                MemorySegment.copy(region, ValueLayout.JAVA_BYTE, pa, dst, off, len);
            } finally {
                exit();
            }
        } else if (len > room && len <= Entries.PAGE_SIZE) {
            bulk.copyTwoPages(va, dst, off, len, false);
        } else {
            bulk.copy(va, null, dst, off, len, false);
        }
    }

    /**
     * Copies {@code src[off .. off+len)} to {@code va}, crossing pages as needed.
     *
     * @param va the first user virtual address to write
     * @param src the source
     * @param off the first index of {@code src} read
     * @param len the number of bytes
     * @throws IndexOutOfBoundsException if {@code [off, off + len)} is not within {@code src}
     * @throws FaultException at the first page that cannot be written, after copying every byte before it
     */
    public void write(long va, byte[] src, int off, int len) {
        Objects.checkFromIndexSize(off, len, src.length);
        long room = Entries.PAGE_SIZE - Entries.pageOffset(va);
        if (len > 0 && len <= room) {
            long pa = translate(va, true);
            try {
                MemorySegment.copy(src, off, region, ValueLayout.JAVA_BYTE, pa, len);
            } finally {
                exit();
            }
        } else if (len > room && len <= Entries.PAGE_SIZE) {
            bulk.copyTwoPages(va, src, off, len, true);
        } else {
            bulk.copy(va, null, src, off, len, true);
        }
    }

    /** Copies {@code dst.byteSize()} bytes at {@code va} into {@code dst}; faults as the byte[] form does.
     * @param va the first user virtual address to read
     * @param dst the destination, all of it written */
    public void read(long va, MemorySegment dst) {
        long len = dst.byteSize();
        if (len > 0 && len <= Entries.PAGE_SIZE - Entries.pageOffset(va)) {
            long pa = translate(va, false);
            try {
                MemorySegment.copy(region, pa, dst, 0, len);
            } finally {
                exit();
            }
            return;
        }
        bulk.copy(va, dst, null, 0, len, false);
    }

    /** Copies all of {@code src} to {@code va}; faults as the byte[] form does.
     * @param va the first user virtual address to write
     * @param src the source, all of it read */
    public void write(long va, MemorySegment src) {
        long len = src.byteSize();
        if (len > 0 && len <= Entries.PAGE_SIZE - Entries.pageOffset(va)) {
            long pa = translate(va, true);
            try {
                MemorySegment.copy(src, 0, region, pa, len);
            } finally {
                exit();
            }
            return;
        }
        bulk.copy(va, src, null, 0, len, true);
    }

    /**
     * For tests in this package: {@code hook} runs inside every bulk copy's access that crosses a
     * page (a copy within one page takes the single-page path, without the hook), after its
     * first page is translated (both pages, for a copy of at most a page) and before its bytes
     * move, to hold an access open on purpose.
     */
    void afterFirstBulkTranslationForTesting(Runnable hook) {
        bulk.afterFirstTranslationForTesting(hook);
    }

    // ---- pinning

    /**
     * Pins the page holding {@code va} (get_user_pages): faults it in if needed (for writing if
     * {@code write}) and returns its frame's bytes. The frame stays alive until the pinned page
     * is closed, even if the page is unmapped meanwhile; then it no longer belongs to the mapping.
     * A read pin of a page never written is the shared zero page, read-only.
     *
     * @param va a user virtual address in the page
     * @param write whether to pin it for writing (breaking copy-on-write first)
     * @return the pin; close it on this thread
     */
    public PinnedPage pin(long va, boolean write) {
        for (int attempt = 0;; attempt = Backoff.idle(attempt)) {
            long seq = mm.forkSeq();
            if ((seq & 1) != 0) {
                continue;
            }
            PinnedPage p;
            // Inside the access the frame cannot be released, so the mapping's reference is still
            // held while the pin takes its own.
            long pfn = translate(va, write) >>> Entries.PAGE_SHIFT;
            try {
                p = pins.tryPin(va & -Entries.PAGE_SIZE, pfn, seq);
            } finally {
                exit();
            }
            if (p != null) {
                return p;
            }
            if (mm.forkSeq() == seq) {
                // Shared copy-on-write with another space: make it this space's alone first.
                int r = faultOnly(va, write, true);
                if (r != FaultHandler.OK) {
                    throw new FaultException(AddressSpace.kindOf(r), va, write);
                }
            }
        }
    }

    // ---- lifecycle

    /**
     * A hint: drops every cached translation (the next accesses walk the tables again). A
     * context holds nothing back between accesses anyway, so nobody needs to call this; it
     * costs a TLB flush. It also marks the context quiescent: unmaps by other threads then need
     * no process-wide barrier on its account until its next access (which fences once).
     */
    public void idle() {
        checkThread();
        dropTranslations();
        if (!isClosedContext()) {
            quiesce();
        }
    }

    /** {@return the TLB flushes so far (shootdowns seen, plus idles)} */
    public long tlbFlushes() {
        return flushes();
    }

    /** {@return the TLB misses so far (walks)} */
    public long tlbMisses() {
        return misses();
    }

    /** Detaches; idempotent. Must run on the owner thread. */
    @Override
    public void close() {
        checkThread();
        if (!isClosedContext()) {
            markClosed();
            if (attachment != null && attachment.get() == this) {
                attachment.remove();
            }
        }
    }
}
