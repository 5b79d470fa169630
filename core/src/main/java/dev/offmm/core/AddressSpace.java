package dev.offmm.core;

import dev.offmm.core.fault.FaultHandler;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.mm.VmCounters;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.pgtable.PtlSlot;
import dev.offmm.core.pgtable.Pte;
import dev.offmm.core.vma.MapOps;
import dev.offmm.core.vma.Vma;
import dev.offmm.core.walk.MmWalkOps;
import dev.offmm.core.pgtable.PageWalker;
import dev.offmm.core.pgtable.PtDump;
import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.lock.Backoff;
import dev.offmm.offheap.lock.LockClass;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Lock;

/**
 * One address space (an mm): VMAs mapped over a 4-level page table whose frames, and the frames
 * it maps, come from a {@link PhysicalMemory} that several address spaces may share.
 *
 * <p>All operations are thread-safe. Faults run concurrently with each other under per-VMA read
 * locks; mmap, munmap, mprotect and the madvise flag changes take mmap_lock for write;
 * madvise(DONTNEED) takes it for read.
 *
 * <p>Addresses are user virtual addresses in {@code [0, 2^47)}; lengths are rounded up to 4 KiB.
 * Errors follow Linux: {@link IllegalArgumentException} for EINVAL, {@link VmException} with
 * ENOMEM / EEXIST / EPERM, and {@link FaultException} for failed faults. After
 * {@link #close()}, every call fails with {@link IllegalStateException}.
 */
public final class AddressSpace implements AutoCloseable {
    /** One past the highest user address. */
    public static final long USER_END = MapOps.USER_END;
    /** The lowest address mmap hands out or accepts. */
    public static final long MMAP_MIN_ADDR = MapOps.MMAP_MIN_ADDR;
    /** Page size. */
    public static final long PAGE_SIZE = 4096;
    /** Spins and yields (never parks) for a VMA lock before a fault falls back to mmap_lock. */
    private static final int VMA_LOCK_RETRIES = 72;

    private final Mm mm;
    private final FaultHandler faults;
    private final MapOps ops;
    private final ThreadLocal<PtlSlot> slots = ThreadLocal.withInitial(PtlSlot::new);
    /** The calling thread's attached context, if any. */
    private final ThreadLocal<Mmu> attached = new ThreadLocal<>();

    private AddressSpace(PhysicalMemory memory, VmConfig config) {
        this.mm = new Mm(memory, config);
        this.faults = new FaultHandler(mm);
        this.ops = new MapOps(mm, faults);
    }

    /**
     * Creates an empty address space on {@code memory}.
     *
     * @throws VmException ENOMEM if the PGD or its lock cannot be allocated
     * @throws IllegalStateException if {@code memory} is closed
     */
    public static AddressSpace create(PhysicalMemory memory, VmConfig config) {
        if (memory == null || config == null) {
            throw new IllegalArgumentException("memory=" + memory + ", config=" + config + " (expected both non-null)");
        }
        if (memory.isClosed()) {
            throw new IllegalStateException("physical memory is closed");
        }
        return new AddressSpace(memory, config);
    }

    /**
     * Maps {@code length} bytes of anonymous private memory, zero-filled on first touch.
     *
     * @param addr   a hint, or the exact address with {@link MapFlags#FIXED} /
     *               {@link MapFlags#FIXED_NOREPLACE} (then 4 KiB aligned)
     * @param length bytes, > 0, rounded up to 4 KiB
     * @param prot   {@link Prot} bits
     * @param flags  {@link MapFlags} bits
     * @return the start of the mapping
     * @throws IllegalArgumentException EINVAL: length 0, unknown bits, an unaligned FIXED address
     * @throws VmException ENOMEM (no room, beyond the user space, too many mappings), EEXIST
     *         ({@code FIXED_NOREPLACE} over a mapping), EPERM (below {@link #MMAP_MIN_ADDR})
     */
    public long mmap(long addr, long length, int prot, int flags) {
        ensureOpen();
        offlineCaller();
        return ops.mmap(addr, length, prot, flags);
    }

    /**
     * Unmaps {@code [addr, addr + length)}; unmapped parts of the range are fine. Pages and
     * emptied page tables are freed after every thread context has moved past the unmap.
     *
     * @throws IllegalArgumentException EINVAL: unaligned address, length 0, range beyond the user space
     */
    public void munmap(long addr, long length) {
        ensureOpen();
        offlineCaller();
        ops.munmap(addr, length);
    }

    /**
     * Changes the protection of {@code [addr, addr + length)}, splitting and merging VMAs. A length
     * of 0 does nothing (as in Linux).
     *
     * @throws IllegalArgumentException EINVAL: unaligned address, unknown prot bits, range overflow
     * @throws VmException ENOMEM if part of the range is not mapped (nothing is changed)
     */
    public void mprotect(long addr, long length, int prot) {
        ensureOpen();
        offlineCaller();
        ops.mprotect(addr, length, prot);
    }

    /**
     * Advises on {@code [addr, addr + length)}: {@link Advice#DONTNEED} drops the pages (the next
     * read sees zeros); {@link Advice#HUGEPAGE} / {@link Advice#NOHUGEPAGE} mark the VMAs;
     * {@link Advice#WILLNEED} checks the range and does nothing else. A length of 0 does nothing.
     *
     * @throws IllegalArgumentException EINVAL: unaligned address, unknown advice, range overflow
     * @throws VmException ENOMEM if part of the range is not mapped (nothing is changed)
     */
    public void madvise(long addr, long length, int advice) {
        ensureOpen();
        offlineCaller();
        ops.madvise(addr, length, advice);
    }

    /**
     * Resolves a fault at {@code address} as a read or write access would.
     *
     * @throws FaultException MAPERR (nothing mapped), ACCERR (protection), OOM (no memory)
     */
    public void fault(long address, boolean write) {
        int r = faultResult(address, write, slots.get());
        if (r != FaultHandler.OK) {
            throw new FaultException(kindOf(r), address, write);
        }
    }

    /**
     * The fault path without exceptions, for the access layer: returns a {@link FaultHandler}
     * code. Takes the VMA's read lock, falling back to mmap_lock for read, never for write.
     */
    int faultResult(long address, boolean write, PtlSlot slot) {
        ensureOpen();
        if (address < 0 || address >= USER_END) {
            mm.counters.faultMapErr.increment();
            return FaultHandler.MAPERR;
        }
        Vma vma = mm.vmas.lockVmaForRead(address);
        // Optimistic spinning, as an rwsem does while its writer runs: a VMA being replaced by
        // mmap/munmap/mprotect is usually republished within microseconds, while parking on
        // mmap_lock costs a scheduler round trip (milliseconds when threads outnumber cores).
        for (int attempt = 0; vma == null && attempt < VMA_LOCK_RETRIES && mm.vmas.find(address) != null;) {
            attempt = Backoff.idle(attempt);
            vma = mm.vmas.lockVmaForRead(address);
        }
        if (vma != null) {
            try {
                return faults.handleMmFault(vma, address, write, slot);
            } finally {
                vma.readUnlock();
            }
        }
        Lock r = mm.vmas.mmapLock.readLock();
        r.lock();
        try {
            ensureOpen();
            mm.counters.faultMmapLockFallback.increment();
            vma = mm.vmas.find(address);
            if (vma == null) {
                mm.counters.faultMapErr.increment();
                return FaultHandler.MAPERR;
            }
            return faults.handleMmFault(vma, address, write, slot);
        } finally {
            r.unlock();
        }
    }

    // ---- casual accesses: each one walks the tables and holds the PTE lock for the access, so
    // ---- it is always safe and always slow (hundreds of ns). Per-thread contexts are the fast path.

    /** Reads the byte at {@code va}, faulting it in if needed. */
    public byte getByte(long va) {
        PtlSlot slot = slots.get();
        long pa = lockPage(va, false, slot);
        try {
            return mm.memory.region().get(ValueLayout.JAVA_BYTE, pa);
        } finally {
            mm.ptl.unlock(slot.ptl);
        }
    }

    /** Writes the byte at {@code va}, faulting it in (and copying a zero page) if needed. */
    public void putByte(long va, byte value) {
        PtlSlot slot = slots.get();
        long pa = lockPage(va, true, slot);
        try {
            mm.memory.region().set(ValueLayout.JAVA_BYTE, pa, value);
        } finally {
            mm.ptl.unlock(slot.ptl);
        }
    }

    /** Reads the long at {@code va} (little-endian; any alignment, page crossings included). */
    public long getLong(long va) {
        if ((va & (PAGE_SIZE - 1)) <= PAGE_SIZE - Long.BYTES) {
            PtlSlot slot = slots.get();
            long pa = lockPage(va, false, slot);
            try {
                return mm.memory.region().get(ValueLayout.JAVA_LONG_UNALIGNED, pa);
            } finally {
                mm.ptl.unlock(slot.ptl);
            }
        }
        byte[] b = new byte[Long.BYTES];
        read(va, b, 0, b.length);
        return MemorySegment.ofArray(b).get(ValueLayout.JAVA_LONG_UNALIGNED, 0);
    }

    /** Writes the long at {@code va} (little-endian; any alignment, page crossings included). */
    public void putLong(long va, long value) {
        if ((va & (PAGE_SIZE - 1)) <= PAGE_SIZE - Long.BYTES) {
            PtlSlot slot = slots.get();
            long pa = lockPage(va, true, slot);
            try {
                mm.memory.region().set(ValueLayout.JAVA_LONG_UNALIGNED, pa, value);
            } finally {
                mm.ptl.unlock(slot.ptl);
            }
            return;
        }
        byte[] b = new byte[Long.BYTES];
        MemorySegment.ofArray(b).set(ValueLayout.JAVA_LONG_UNALIGNED, 0, value);
        write(va, b, 0, b.length);
    }

    /** Copies {@code len} bytes at {@code va} into {@code dst[off ..]}, page by page. */
    public void read(long va, byte[] dst, int off, int len) {
        java.util.Objects.checkFromIndexSize(off, len, dst.length);
        copy(va, MemorySegment.ofArray(dst), off, len, false);
    }

    /** Copies {@code src[off .. off+len)} to {@code va}, page by page. */
    public void write(long va, byte[] src, int off, int len) {
        java.util.Objects.checkFromIndexSize(off, len, src.length);
        copy(va, MemorySegment.ofArray(src), off, len, true);
    }

    private void copy(long va, MemorySegment buf, long off, long len, boolean write) {
        if (va < 0 || len > USER_END - va) {
            throw new FaultException(FaultException.Kind.MAPERR, va, write);
        }
        PtlSlot slot = slots.get();
        while (len > 0) {
            long chunk = Math.min(len, PAGE_SIZE - (va & (PAGE_SIZE - 1)));
            long pa = lockPage(va, write, slot);
            try {
                if (write) {
                    MemorySegment.copy(buf, off, mm.memory.region(), pa, chunk);
                } else {
                    MemorySegment.copy(mm.memory.region(), pa, buf, off, chunk);
                }
            } finally {
                mm.ptl.unlock(slot.ptl);
            }
            va += chunk;
            off += chunk;
            len -= chunk;
        }
    }

    /**
     * Returns the physical offset of {@code va} with its PTE lock held (in {@code slot.ptl}) and
     * the entry allowing the access, faulting as needed. The lock keeps the frame mapped while
     * the caller touches it: an unmap clears the entry under that lock.
     */
    private long lockPage(long va, boolean write, PtlSlot slot) {
        if (va < 0 || va >= USER_END) {
            throw new FaultException(FaultException.Kind.MAPERR, va, write);
        }
        // This path uses no TLB and may fault: the caller's own context must not hold back a
        // grace period that the fault's allocation could be waiting for.
        offlineCaller();
        while (true) {
            ensureOpen();
            // The VMA (or mmap_lock) keeps the upper tables alive for the lockless walk. Once the
            // PTE lock is held it is dropped: an unmap must take that PTE lock to clear the entry,
            // so the frame and the table outlive the caller's access.
            Vma vma = mm.vmas.lockVmaForRead(va);
            Lock mmapRead = null;
            if (vma == null) {
                mmapRead = mm.vmas.mmapLock.readLock();
                mmapRead.lock();
                vma = mm.vmas.find(va);
            }
            try {
                ensureOpen();
                if (vma == null) {
                    mm.counters.faultMapErr.increment();
                    throw new FaultException(FaultException.Kind.MAPERR, va, write);
                }
                long pmdE = pmdEntryOf(va);
                if (pmdE >= 0) {
                    long pte = mm.ptl.pteOffsetMapLock(pmdE, va, slot);
                    if (pte >= 0) {
                        long e = mm.entries.getPlain(pte);
                        if (write ? Pte.writable(e) : Pte.present(e)) {
                            return (Pte.pfn(e) << 12) | (va & (PAGE_SIZE - 1));
                        }
                        mm.ptl.pteUnmapUnlock(pte, slot.ptl);
                    }
                }
                int r = faults.handleMmFault(vma, va, write, slot);
                if (r != FaultHandler.OK) {
                    throw new FaultException(kindOf(r), va, write);
                }
            } finally {
                if (mmapRead != null) {
                    mmapRead.unlock();
                } else if (vma != null) {
                    vma.readUnlock();
                }
            }
        }
    }

    /**
     * Attaches the calling thread: a per-thread {@link Mmu} with its own TLB. Close it (on the
     * same thread) when done.
     */
    public Mmu attach() {
        ensureOpen();
        if (attached.get() != null) {
            throw new IllegalStateException("thread " + Thread.currentThread().getName()
                    + " is already attached to this address space (one Mmu per thread)");
        }
        Mmu mmu = new Mmu(this, mm);
        attached.set(mmu);
        return mmu;
    }

    void detached(Mmu mmu) {
        if (attached.get() == mmu) {
            attached.remove();
        }
    }

    /**
     * An mmap/munmap/mprotect/madvise call uses no translation and may block (on mmap_lock, on a
     * VMA's readers, on a grace period): take the caller's context offline so that it does not
     * hold back a grace period that another thread, itself blocking this call, waits for.
     */
    private void offlineCaller() {
        Mmu mmu = attached.get();
        if (mmu != null) {
            mmu.offline();
        }
    }

    /** Pins the page at {@code va}; see {@link Mmu#pin}. Casual form for threads without an Mmu. */
    public PinnedPage pin(long va, boolean write) {
        return pin(va, write, slots.get());
    }

    PinnedPage pin(long va, boolean write, PtlSlot slot) {
        long pa = lockPage(va, write, slot);
        long pfn = pa >>> 12;
        try {
            if (pfn == PhysicalMemory.ZERO_PFN) {
                // A read pin of a page never written: the shared zero page, which lives forever.
                return new PinnedPage(this, va & -PAGE_SIZE, pfn, -1, mm.memory.frameSegment(pfn, 0).asReadOnly());
            }
            // Under the PTE lock the entry maps pfn, so its refcount cannot be dropping to zero.
            mm.memMap.addRefcount(pfn, 1);
        } finally {
            mm.ptl.unlock(slot.ptl);
        }
        return new PinnedPage(this, va & -PAGE_SIZE, pfn, 0, mm.memory.frameSegment(pfn, 0));
    }

    void unpin(long pfn, int order) {
        if (order >= 0) {
            mm.frames.putFrames(pfn, order);
        }
    }

    /** The PMD entry for {@code va}, or -1 if an upper level is missing (acquire loads). */
    private long pmdEntryOf(long va) {
        long pgdval = mm.entries.getAcquire(Entries.entry(mm.pgdPfn, Entries.index(va, Entries.PGDIR_SHIFT)));
        if (pgdval == 0) {
            return -1;
        }
        long pudval = mm.entries.getAcquire(Entries.entry(Pte.pfn(pgdval), Entries.index(va, Entries.PUD_SHIFT)));
        if (pudval == 0) {
            return -1;
        }
        return Entries.entry(Pte.pfn(pudval), Entries.index(va, Entries.PMD_SHIFT));
    }

    static FaultException.Kind kindOf(int code) {
        return switch (code) {
            case FaultHandler.MAPERR -> FaultException.Kind.MAPERR;
            case FaultHandler.ACCERR -> FaultException.Kind.ACCERR;
            default -> FaultException.Kind.OOM;
        };
    }

    /**
     * Walks the page tables of {@code [start, end)} under mmap_lock held for read, calling
     * {@code ops} per entry; returns 0 or the first non-zero callback result.
     */
    public int walkPageRange(long start, long end, MmWalkOps walkOps) {
        if (walkOps == null) {
            throw new IllegalArgumentException("ops=null (expected callbacks)");
        }
        if (start < 0 || end > USER_END || start > end) {
            throw new IllegalArgumentException("[0x" + Long.toHexString(start) + ", 0x" + Long.toHexString(end)
                    + ") (expected 0 <= start <= end <= 0x" + Long.toHexString(USER_END) + ")");
        }
        return withMmapReadLock(() -> PageWalker.walkPageRange(mm, start & -PAGE_SIZE, end, walkOps, null));
    }

    /** A readable dump of every mapped range: address range, size, attributes, level. */
    public String ptdump() {
        return withMmapReadLock(() -> PtDump.dump(mm, 0, USER_END));
    }

    /** The current mappings, one line each, like {@code /proc/self/maps}. */
    public List<String> mappings() {
        return withMmapReadLock(() -> {
            List<String> out = new ArrayList<>();
            for (Vma v : mm.vmas.snapshot()) {
                out.add(v.toString());
            }
            return out;
        });
    }

    private <T> T withMmapReadLock(java.util.function.Supplier<T> body) {
        ensureOpen();
        Lock r = mm.vmas.mmapLock.readLock();
        r.lock();
        try {
            ensureOpen();
            return body.get();
        } finally {
            r.unlock();
        }
    }

    /** A snapshot of the counters. */
    public VmStats stats() {
        VmCounters c = mm.counters;
        Map<String, Long> f = new LinkedHashMap<>();
        f.put("zero", c.faultZero.sum());
        f.put("anon", c.faultAnon.sum());
        f.put("cow", c.faultCow.sum());
        f.put("reuse", c.faultReuse.sum());
        f.put("spurious", c.faultSpurious.sum());
        f.put("maperr", c.faultMapErr.sum());
        f.put("accerr", c.faultAccErr.sum());
        f.put("oom", c.faultOom.sum());
        f.put("mmapLockFallback", c.faultMmapLockFallback.sum());
        Map<LockClass, Long> acq = new EnumMap<>(LockClass.class);
        Map<LockClass, Long> cont = new EnumMap<>(LockClass.class);
        for (LockClass k : LockClass.values()) {
            acq.put(k, c.lockAcquisitions[k.ordinal()].sum());
            cont.put(k, c.lockContentions[k.ordinal()].sum());
        }
        return new VmStats(c.rssPages.sum(), c.pteTables.sum() * PAGE_SIZE, c.pmdTables.sum() * PAGE_SIZE,
                c.pudTables.sum() * PAGE_SIZE, mm.vmas.size(), Map.copyOf(f), Map.copyOf(acq), Map.copyOf(cont),
                c.tlbFlushes.sum(), c.tableRacesLost.sum(), mm.reclaimer.pendingFrames(), c.pagesAllocated.sum(),
                c.pagesFreed.sum(), c.tablesAllocated.sum(), c.tablesFreed.sum(), c.gracePeriods.sum());
    }

    /** The configuration. */
    public VmConfig config() {
        return mm.config;
    }

    /** The lock mode in force ({@link LockMode#AUTO} resolved). */
    public LockMode lockMode() {
        return mm.config.effectiveLockMode();
    }

    /** The physical memory. */
    public PhysicalMemory memory() {
        return mm.memory;
    }

    /** Whether closed. */
    public boolean isClosed() {
        return mm.isClosed();
    }

    /** Internal state, for the access layer and tests in this module. */
    Mm mm() {
        return mm;
    }

    /**
     * Unmaps everything, waits (up to 10 s) for pending frees, frees the PGD and verifies the
     * kernel's {@code check_mm} invariants: no resident page, no page-table byte, every frame and
     * every lock of this address space returned. Idempotent.
     *
     * @throws IllegalStateException if an invariant does not hold (a leak), naming what leaked
     */
    @Override
    public void close() {
        // Like munmap, close uses no translation: the caller's own context must not hold back the
        // grace period that close waits for below.
        offlineCaller();
        Lock w = mm.vmas.mmapLock.writeLock();
        w.lock();
        try {
            if (mm.isClosed()) {
                return;
            }
            mm.markClosed();
            ops.unmapAll();
            // Even with nothing mapped, every context must pass through its generation check
            // (which sees 'closed' and goes idle) before the PGD is freed under a lockless walk.
            mm.flushTlb();
        } finally {
            w.unlock();
        }
        boolean quiet = mm.reclaimer.awaitQuiescent(TimeUnit.SECONDS.toNanos(10));
        mm.pgtables.freePgd(mm.pgdPfn);
        checkMm(quiet);
    }

    private void checkMm(boolean quiet) {
        VmCounters c = mm.counters;
        List<String> bad = new ArrayList<>();
        if (!quiet) {
            bad.add(mm.reclaimer.pendingFrames() + " frames still waiting for a grace period");
        }
        if (c.rssPages.sum() != 0) {
            bad.add("rss=" + c.rssPages.sum() + " pages");
        }
        long tables = c.pteTables.sum() + c.pmdTables.sum() + c.pudTables.sum();
        if (tables != 0) {
            bad.add("pgtables_bytes=" + tables * PAGE_SIZE);
        }
        if (c.framesHeld.sum() != 0) {
            bad.add("frames held=" + c.framesHeld.sum());
        }
        if (mm.ptLocks.liveLocks() != 0) {
            bad.add("live page-table locks=" + mm.ptLocks.liveLocks());
        }
        if (!bad.isEmpty()) {
            throw new IllegalStateException("check_mm: address space leaked: " + String.join(", ", bad));
        }
    }

    private void ensureOpen() {
        mm.ensureOpen();
    }

    @Override
    public String toString() {
        return "AddressSpace[mm " + mm.id + ", " + lockMode() + (mm.config.debugLocks() ? "+debug" : "")
                + ", " + mm.vmas.size() + " VMAs" + (mm.isClosed() ? ", closed]" : "]");
    }
}
