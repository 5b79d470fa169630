package dev.offmm.core;

import dev.offmm.core.event.GracePeriodWaitEvent;
import dev.offmm.core.event.SlowMappingCallEvent;
import dev.offmm.core.fault.FaultHandler;
import dev.offmm.core.mm.Mm;
import dev.offmm.core.ops.Fork;
import dev.offmm.core.ops.MapOps;
import dev.offmm.core.ops.MmServices;
import dev.offmm.core.pgtable.Entries;
import dev.offmm.core.reclaim.EpochSlot;
import dev.offmm.core.vma.Vma;
import dev.offmm.core.walk.MmWalkOps;
import dev.offmm.core.walk.PageWalker;
import dev.offmm.core.walk.PtDump;
import dev.offmm.offheap.PhysicalMemory;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Lock;
import java.util.function.Supplier;

/**
 * One address space (an mm): VMAs mapped over a 4-level page table whose frames, and the frames
 * it maps, come from a {@link PhysicalMemory} that several address spaces may share.
 *
 * <p>All operations are thread-safe. Faults run concurrently with each other under per-VMA read
 * locks; mmap, munmap, mprotect and the madvise flag changes take mmap_lock for write;
 * madvise(DONTNEED) takes it for read.
 *
 * <p>The casual accesses here ({@link #getLong}, {@link #write}, {@link #pin}, ...) take the
 * same path as an {@link Mmu}'s, through a per-thread context of this space (the thread's
 * attached {@code Mmu}, if it has one). An {@code Mmu} is faster: it saves the thread-local
 * lookup of that context on every call.
 *
 * <p>Addresses are user virtual addresses in {@code [0, 2^47)}; lengths are rounded up to 4 KiB.
 * Errors follow Linux: {@link IllegalArgumentException} for EINVAL, {@link VmException} with
 * ENOMEM / EEXIST / EPERM, and {@link FaultException} for failed faults. After
 * {@link #close()}, every call fails with {@link IllegalStateException}, except {@link #close()}
 * itself, {@link #isClosed()}, {@link #stats()} (the final counters stay readable),
 * {@link #config()}, {@link #lockMode()}, {@link #memory()} and {@code toString()}.
 */
public final class AddressSpace implements AutoCloseable {
    /** One past the highest user address. */
    public static final long USER_END = Entries.USER_END;
    /** The lowest address mmap hands out or accepts. */
    public static final long MMAP_MIN_ADDR = MapOps.MMAP_MIN_ADDR;
    /** Page size. */
    public static final long PAGE_SIZE = Entries.PAGE_SIZE;

    private final MmServices services;
    private final Mm mm;
    private final MapOps ops;
    /** The calling thread's attached context, if any. */
    private final ThreadLocal<Mmu> attached = new ThreadLocal<>();
    /** The context of the calling thread's casual accesses when it has none attached. */
    private final ThreadLocal<Mmu> casual = ThreadLocal.withInitial(this::newContext);
    /** Serialises close(): a second caller returns only once the first has finished. */
    private final Object closeLock = new Object();

    private AddressSpace(MmServices services) {
        this.services = services;
        this.mm = services.mm();
        this.ops = services.ops();
    }

    /**
     * {@return a new, empty address space on {@code memory}} It stays registered with the memory
     * until it is closed: {@link PhysicalMemory#close()} closes it first.
     *
     * @param memory the physical memory its frames come from, open
     * @param config lock mode, THP policy, limits ({@link VmConfig#defaults()} for Linux's)
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
        return LiveSpaces.add(memory.open(() -> new AddressSpace(MmServices.create(memory, config))));
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
        SlowMappingCallEvent e = enterCall();
        long start = ops.mmap(addr, length, prot, flags);
        SlowMappingCallEvent.end(e, "mmap", mm.id(), start, length, prot);
        return start;
    }

    /**
     * Unmaps {@code [addr, addr + length)}; unmapped parts of the range are fine. Pages and
     * emptied page tables are freed after every thread context has moved past the unmap.
     *
     * @param addr   the start, 4 KiB aligned
     * @param length bytes, > 0, rounded up to 4 KiB
     * @throws IllegalArgumentException EINVAL: unaligned address, length 0, range beyond the user space
     */
    public void munmap(long addr, long length) {
        SlowMappingCallEvent e = enterCall();
        ops.munmap(addr, length);
        SlowMappingCallEvent.end(e, "munmap", mm.id(), addr, length, 0);
    }

    /**
     * Changes the protection of {@code [addr, addr + length)}, splitting and merging VMAs. A length
     * of 0 does nothing (as in Linux).
     *
     * @param addr   the start, 4 KiB aligned
     * @param length bytes, rounded up to 4 KiB
     * @param prot   the new {@link Prot} bits
     * @throws IllegalArgumentException EINVAL: unaligned address, unknown prot bits, range overflow
     * @throws VmException ENOMEM if part of the range is not mapped (nothing is changed)
     */
    public void mprotect(long addr, long length, int prot) {
        SlowMappingCallEvent e = enterCall();
        ops.mprotect(addr, length, prot);
        SlowMappingCallEvent.end(e, "mprotect", mm.id(), addr, length, prot);
    }

    /**
     * Advises on {@code [addr, addr + length)}: {@link Advice#DONTNEED} drops the pages (the next
     * read sees zeros); {@link Advice#HUGEPAGE} / {@link Advice#NOHUGEPAGE} mark the VMAs;
     * {@link Advice#WILLNEED} checks the range and does nothing else. A length of 0 does nothing.
     *
     * @param addr   the start, 4 KiB aligned
     * @param length bytes, rounded up to 4 KiB
     * @param advice one {@link Advice} value
     * @throws IllegalArgumentException EINVAL: unaligned address, unknown advice, range overflow
     * @throws VmException ENOMEM if part of the range is not mapped (nothing is changed)
     */
    public void madvise(long addr, long length, int advice) {
        SlowMappingCallEvent e = enterCall();
        ops.madvise(addr, length, advice);
        SlowMappingCallEvent.end(e, "madvise", mm.id(), addr, length, advice);
    }

    /**
     * Resolves a fault at {@code address} as a read or write access would.
     *
     * @param address the faulting address, any alignment
     * @param write   a write access (a read otherwise)
     * @throws FaultException MAPERR (nothing mapped), ACCERR (protection), OOM (no memory)
     */
    public void fault(long address, boolean write) {
        int r = context().faultOnly(address, write, false);
        if (r != FaultHandler.OK) {
            throw new FaultException(kindOf(r), address, write);
        }
    }

    // ---- casual accesses: the Mmu path, through this thread's context

    /**
     * {@return the byte at {@code va}, faulting it in if needed}
     *
     * @param va the address
     */
    public byte getByte(long va) {
        return context().getByte(va);
    }

    /**
     * Writes the byte at {@code va}, faulting it in (and copying a zero page) if needed.
     *
     * @param va    the address
     * @param value the byte
     */
    public void putByte(long va, byte value) {
        context().putByte(va, value);
    }

    /**
     * {@return the long at {@code va} (little-endian; any alignment, page crossings included)}
     *
     * @param va the address of the first byte
     */
    public long getLong(long va) {
        return context().getLong(va);
    }

    /**
     * Writes the long at {@code va} (little-endian, any alignment); a store crossing into an
     * unwritable page writes nothing.
     *
     * @param va    the address of the first byte
     * @param value the long
     */
    public void putLong(long va, long value) {
        context().putLong(va, value);
    }

    /**
     * Copies {@code len} bytes at {@code va} into {@code dst[off ..]}; see {@link Mmu#read(long, byte[], int, int)}.
     *
     * @param va  the address of the first byte
     * @param dst the destination
     * @param off the first index written in {@code dst}
     * @param len bytes
     */
    public void read(long va, byte[] dst, int off, int len) {
        context().read(va, dst, off, len);
    }

    /**
     * Copies {@code src[off .. off+len)} to {@code va}; see {@link Mmu#write(long, byte[], int, int)}.
     *
     * @param va  the address of the first byte
     * @param src the source
     * @param off the first index read in {@code src}
     * @param len bytes
     */
    public void write(long va, byte[] src, int off, int len) {
        context().write(va, src, off, len);
    }

    /**
     * {@return a pin of the page at {@code va}; see {@link Mmu#pin}}
     *
     * @param va    an address in the page
     * @param write pin for writing (breaks copy-on-write first)
     */
    public PinnedPage pin(long va, boolean write) {
        return context().pin(va, write);
    }

    /** {@return the calling thread's new {@link Mmu} with its own TLB; close it on the same thread when done} */
    public Mmu attach() {
        ensureOpen();
        if (attached.get() != null) {
            throw new IllegalStateException("thread " + Thread.currentThread().getName()
                    + " is already attached to this address space (one Mmu per thread)");
        }
        Mmu mmu = new Mmu(mm, services.memory().zone().region(), services.entries(), services.faults(), services.reclaimer(),
                attached);
        attached.set(mmu);
        return mmu;
    }

    private Mmu newContext() {
        return new Mmu(mm, services.memory().zone().region(), services.entries(), services.faults(), services.reclaimer(), null);
    }

    /** The calling thread's context for a casual call: its attached Mmu, or its casual one. */
    private Mmu context() {
        Mmu mmu = attached.get();
        if (mmu != null) {
            return mmu;
        }
        ensureOpen();
        return casual.get();
    }

    /**
     * {@return a new space on the same memory with the same VMAs and contents ({@code fork()}), every
     * page copy-on-write in both; afterwards a write, munmap, mprotect, madvise or close in one never
     * changes what the other reads} With {@link VmConfig#sharePageTables()} and split PTE locks the
     * PTE table of each 2 MiB wholly inside one VMA is shared until either space changes it. A
     * page pinned at the fork is copied for the child, so the pin keeps seeing the parent's writes.
     * THPs are split, hugetlb pages copied. Holds mmap_lock for write; either may close first.
     *
     * @throws VmException ENOMEM if the child found no frame for a table or a copied page (nothing is left of it)
     * @throws IllegalStateException if this space or its memory is closed
     */
    public AddressSpace fork() {
        SlowMappingCallEvent call = enterCall();
        MmServices child = Fork.fork(services);
        AddressSpace space;
        try {
            // Registered after the fork, so the memory's other users never wait for one to run.
            space = services.memory().open(() -> new AddressSpace(child));
        } catch (RuntimeException | Error e) {
            Fork.discard(child, e);
            throw e;
        }
        // Once the memory holds it, the child is closed by its owner or the memory, never discarded here.
        SlowMappingCallEvent.end(call, "fork", mm.id(), 0, 0, 0);
        return LiveSpaces.add(space);
    }

    /**
     * An mmap/munmap/mprotect/madvise call runs outside any access, so it holds no grace period
     * back while it blocks (on mmap_lock, a VMA's readers or a grace period). The thread's
     * attached context says so definitely ({@link EpochSlot#QUIESCENT}): other threads' unmaps
     * meanwhile need no process-wide barrier for it. Returns the call's JFR event, null unless recorded.
     */
    private SlowMappingCallEvent enterCall() {
        ensureOpen();
        Mmu mmu = attached.get();
        if (mmu != null && !mmu.isClosedContext()) {
            mmu.quiesce();
        }
        return SlowMappingCallEvent.start();
    }

    static FaultException.Kind kindOf(int code) {
        return switch (code) {
            case FaultHandler.MAPERR -> FaultException.Kind.MAPERR;
            case FaultHandler.ACCERR -> FaultException.Kind.ACCERR;
            default -> FaultException.Kind.OOM;
        };
    }

    /**
     * {@return 0, or the first non-zero result of a callback of a walk of the page tables of
     * {@code [start, end)} under mmap_lock held for read, which calls {@code walkOps} per entry}
     *
     * @param start   the first address, 4 KiB aligned
     * @param end     the end, exclusive
     * @param walkOps the callbacks
     */
    public int walkPageRange(long start, long end, MmWalkOps walkOps) {
        if (walkOps == null) {
            throw new IllegalArgumentException("ops=null (expected callbacks)");
        }
        if (start < 0 || end > USER_END || start > end) {
            throw new IllegalArgumentException("[0x" + Long.toHexString(start) + ", 0x" + Long.toHexString(end)
                    + ") (expected 0 <= start <= end <= 0x" + Long.toHexString(USER_END) + ")");
        }
        return withMmapReadLock(() -> PageWalker.walkPageRange(services.entries(), services.ptl(), mm.pgd(),
                start & -PAGE_SIZE, end, walkOps, null));
    }

    /** {@return a readable dump of every mapped range: address range, size, attributes, level} */
    public String ptdump() {
        return withMmapReadLock(() -> PtDump.dump(services.entries(), services.ptl(), mm.pgd(), 0, USER_END));
    }

    /** {@return the current mappings, one line each, like {@code /proc/self/maps}} */
    public List<String> mappings() {
        return withMmapReadLock(() -> {
            List<String> out = new ArrayList<>();
            for (Vma v : mm.vmas().snapshot()) {
                out.add(v.toString());
            }
            return out;
        });
    }

    private <T> T withMmapReadLock(Supplier<T> body) {
        ensureOpen();
        Lock r = mm.vmas().mmapLock().readLock();
        r.lock();
        try {
            ensureOpen();
            return body.get();
        } finally {
            r.unlock();
        }
    }

    /** {@return a snapshot of the counters (racy while threads run; still readable after {@link #close()})} */
    public VmStats stats() {
        return CheckMm.snapshot(mm, services.reclaimer().pendingFrames());
    }

    /** {@return the configuration} */
    public VmConfig config() {
        return mm.config();
    }

    /** {@return the lock mode in force ({@link LockMode#AUTO} resolved)} */
    public LockMode lockMode() {
        return mm.config().effectiveLockMode();
    }

    /** {@return the physical memory} */
    public PhysicalMemory memory() {
        return services.memory();
    }

    /** {@return whether closed} */
    public boolean isClosed() {
        return mm.isClosed();
    }

    /** The services of this space, for tests in this package. */
    MmServices services() {
        return services;
    }

    /**
     * Unmaps everything, waits for the accesses still in progress on other threads to end (at most
     * 10 s; a context that is not inside an access is not waited for), frees the PGD, unregisters
     * from the memory and verifies the kernel's {@code check_mm} invariants: no resident page, no
     * page-table byte, every frame and every lock of this address space returned. Idempotent; a
     * second caller waits for the first to finish.
     *
     * <p>Pages pinned and still open keep only their frames alive: each frame goes back when its
     * pin closes, and {@link PhysicalMemory#close()} reports frames still in use.
     *
     * @throws IllegalStateException if an invariant does not hold (a leak), naming what leaked
     */
    @Override
    public void close() {
        synchronized (closeLock) {
            long gen;
            // Like munmap, close runs outside any access: it waits below only for accesses in
            // progress on other threads.
            Lock w = mm.vmas().mmapLock().writeLock();
            w.lock();
            try {
                if (mm.isClosed()) {
                    return;
                }
                mm.markClosed();
                ops.unmapAll();
                services.handler().retireAllReplaced();
                // Every context's next access sees the new generation, and with it 'closed'.
                gen = mm.flushTlb();
            } finally {
                w.unlock();
            }
            try {
                // An access that began before the bump may still walk from the PGD: free it after.
                services.reclaimer().retire(gen, new PgdBatch(services));
                GracePeriodWaitEvent e = GracePeriodWaitEvent.start();
                boolean quiet = services.reclaimer().awaitQuiescent(TimeUnit.SECONDS.toNanos(10));
                GracePeriodWaitEvent.end(e, "close", mm.id(), -1, quiet);
                CheckMm.verify(mm.counters(), services, quiet);
            } finally {
                LiveSpaces.remove(this);
                services.memory().unregister(this);
            }
        }
    }

    private void ensureOpen() {
        mm.ensureOpen();
    }

    @Override
    public String toString() {
        return "AddressSpace[" + mm + ", " + lockMode() + (mm.config().debugLocks() ? "+debug" : "")
                + ", " + mm.vmas().size() + " VMAs" + (mm.isClosed() ? ", closed]" : "]");
    }
}
