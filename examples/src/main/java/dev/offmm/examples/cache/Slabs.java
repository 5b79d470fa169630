package dev.offmm.examples.cache;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.Advice;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Prot;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The value store of an {@link OffHeapCache}: size classes (slabs) carved, one chunk at a time,
 * from one large {@code NORESERVE} mapping, and CLOCK eviction of whole chunks under a byte budget.
 *
 * <p>A chunk holds entries of one size class at a fixed stride, bump-allocated from the class's
 * open chunk (under the class's lock: one lock per class, taken once per put), and ends in a
 * trailer with each entry's bucket (4 bytes an entry) for its eviction. A full chunk joins
 * the CLOCK; a get that hits sets its chunk's reference bit. When taking a chunk would exceed the
 * budget, the hand sweeps the full chunks: a referenced chunk loses its bit (second chance) or, if
 * most of its bytes are dead (replaced entries), is compacted; an unreferenced one is evicted: its
 * live entries are unlinked from the index (or, compacting, copied forward). A chunk evicted to make
 * room for a put is handed to that put as it is, pages and old bytes included, if its entries are
 * at least {@value #RECYCLE_MIN_STRIDE} bytes: at the budget, a fresh chunk would cost a fault and
 * the zeroing of the whole chunk only to be written over. Every other evicted chunk ({@link #trim},
 * a second one when over budget, one of small entries) has its pages dropped with {@code DONTNEED}
 * (resident memory falls at once) and goes on the free stack for any class.
 *
 * <p>A recycled chunk's old bytes are as safe as a dropped chunk's zeros because no reader trusts a
 * chunk's contents alone: a get checks what it read against the slot word and the entry's stamp
 * (unique per put) and key, read again or compared afterwards. Recycling zeroes every old entry's
 * stamp and key before the chunk is written again (a chunk shared with a snapshot, whose
 * copy-on-write finds no frame, is dropped instead), and each writer zeroes its own stamp before
 * its other bytes; see {@link OffHeapCache} for the argument and what it leaves. An eviction trusts
 * only trailer ints that name a bucket (a put that failed before its trailer leaves the old bytes
 * there, and no slot names its entry). A recycled chunk that a put takes but does not install stays
 * resident on the free stack; the next take prefers it, and {@link #trim} drops it.
 *
 * <p>Per chunk (not per entry) there are a few small heap arrays; nothing per entry is on the heap.
 * A put holds its class lock only to bump the pointer or install a chunk; it takes a chunk (and
 * evicts for it) under the eviction lock alone, and an eviction's compaction only tries class
 * locks. A writer holds neither lock while it copies.
 */
final class Slabs {
    /** Unlinks the live entries of a chunk that is being evicted. */
    interface Unlinker {
        /**
         * Unlinks every live entry among {@code count} entries of {@code stride} bytes at
         * {@code chunk} (their trailer follows them); if {@code compact}, first tries to copy each
         * into its class's open chunk ({@link #tryAllocate}) and relink it there; if {@code recycle},
         * then zeroes every entry's header, since the chunk will be written again without being
         * dropped. Returns whether it did (false: drop the chunk).
         */
        boolean unlinkChunk(OffHeapCache.Session session, long chunk, int stride, int count, boolean compact,
                            boolean recycle);
    }

    static final int FREE = 0;
    static final int OPEN = 1;
    static final int FULL = 2;
    static final int EVICTING = 3;

    private static final VarHandle INTS = MethodHandles.arrayElementVarHandle(int[].class);
    private static final VarHandle BYTES = MethodHandles.arrayElementVarHandle(byte[].class);
    /** Entry strides are multiples of this (index references count in these units). */
    static final int ALIGN = 16;

    /**
     * The smallest stride whose chunks are recycled: recycling zeroes every entry's header, so
     * below this it touches more than one cache line in four, and a fresh chunk costs about as much.
     */
    static final int RECYCLE_MIN_STRIDE = 256;
    private static final int NONE = -1;
    private static final int DROPPED = -2;

    /** Bytes of a huge page. */
    static final long HUGE = 2L << 20;

    private final AddressSpace as;
    private final Unlinker unlinker;
    private final long mapped;
    private final boolean huge;
    final long base;
    final long regionBytes;
    final int chunkShift;
    final long chunkBytes;
    private final int chunkCount;
    private final long maxChunks;

    /** Stride of each class, ascending; the last holds the largest entry. */
    final int[] strides;
    /**
     * Entries per chunk of each class: a chunk is {@code perChunk} entries at its stride, then its
     * trailer, one int per entry ({@link #trailerOf}): the entry's bucket + 1, 0 for none.
     */
    final int[] perChunk;
    /** Class of an entry of {@code n} bytes: {@code classOf[(n + ALIGN - 1) / ALIGN]}. */
    private final byte[] classOf;

    private final int[] state;
    private final byte[] referenced;
    private final int[] chunkClass;
    private final AtomicIntegerArray writers;
    /** Bytes of the entries of each chunk that the index points to (headers included); a hint. */
    private final AtomicIntegerArray liveBytes;

    private final ReentrantLock[] classLocks;
    /** Per class, guarded by its lock: the open chunk (-1: none), next free and end address. */
    private final int[] openChunk;
    private final long[] next;
    private final long[] end;

    private final Object evictLock = new Object();
    /** Guarded by evictLock. */
    private final int[] freeStack;
    /**
     * Guarded by evictLock: the chunk's pages hold an earlier use's bytes (it was recycled, and its
     * headers zeroed) rather than zeros; on the free stack that means resident, given back unused.
     */
    private final boolean[] resident;
    /** Guarded by evictLock: chunks on the free stack that are resident. */
    private int residentFree;
    private int freeTop;
    private int fresh;
    private int hand;
    private long inUse;
    private long evictedChunks;
    private long recycledChunks;
    private long overBudget;

    Slabs(AddressSpace as, long budgetBytes, long chunkBytes, int maxEntryBytes, Unlinker unlinker) {
        this.as = as;
        this.unlinker = unlinker;
        this.chunkBytes = chunkBytes;
        this.chunkShift = Long.numberOfTrailingZeros(chunkBytes);
        this.maxChunks = budgetBytes / chunkBytes;
        // Address space far larger than the budget: chunk addresses are never short, and the
        // reservation costs nothing until touched (NORESERVE, tables built lazily).
        long reserve = Math.max(4 * maxChunks, maxChunks + 64) * chunkBytes;
        this.chunkCount = (int) (reserve / chunkBytes);
        this.regionBytes = (long) chunkCount * chunkBytes;
        this.huge = chunkBytes % HUGE == 0;
        this.mapped = as.mmap(0, regionBytes + (huge ? HUGE : 0), Prot.READ | Prot.WRITE, MapFlags.NORESERVE);
        // Chunks of whole 2 MiB pages: each is one huge TLB entry while in use, and its DONTNEED
        // drops the huge page whole.
        this.base = huge ? (mapped + HUGE - 1) & -HUGE : mapped;
        if (huge) {
            as.madvise(base, regionBytes, Advice.HUGEPAGE);
        }
        this.strides = strides(maxEntryBytes);
        this.perChunk = new int[strides.length];
        for (int i = 0; i < strides.length; i++) {
            perChunk[i] = (int) (chunkBytes / (strides[i] + Integer.BYTES));
        }
        this.classOf = new byte[maxEntryBytes / ALIGN + 2];
        int c = 0;
        for (int u = 0; u < classOf.length; u++) {
            while (c < strides.length - 1 && strides[c] < u * ALIGN) {
                c++;
            }
            classOf[u] = (byte) c;
        }
        this.state = new int[chunkCount];
        this.referenced = new byte[chunkCount];
        this.chunkClass = new int[chunkCount];
        this.writers = new AtomicIntegerArray(chunkCount);
        this.liveBytes = new AtomicIntegerArray(chunkCount);
        this.freeStack = new int[chunkCount];
        this.resident = new boolean[chunkCount];
        this.classLocks = new ReentrantLock[strides.length];
        this.openChunk = new int[strides.length];
        this.next = new long[strides.length];
        this.end = new long[strides.length];
        for (int i = 0; i < strides.length; i++) {
            classLocks[i] = new ReentrantLock();
            openChunk[i] = -1;
        }
    }

    /** Size classes 16 bytes apart up to 128, then about 1/8 apart: at most ~6 % lost inside an entry. */
    static int[] strides(int maxEntryBytes) {
        int[] s = new int[256];
        int n = 0;
        int size = 2 * ALIGN;
        while (true) {
            s[n++] = size;
            if (size >= maxEntryBytes) {
                break;
            }
            int grow = Math.max(ALIGN, (size / 8 + ALIGN - 1) / ALIGN * ALIGN);
            size = Math.min(size + grow, (maxEntryBytes + ALIGN - 1) / ALIGN * ALIGN);
        }
        return java.util.Arrays.copyOf(s, n);
    }

    int classFor(int entryBytes) {
        return classOf[(entryBytes + ALIGN - 1) / ALIGN];
    }

    int chunkOf(long address) {
        return (int) ((address - base) >>> chunkShift);
    }

    /**
     * The trailer int of the entry at {@code address}: the writer of the entry stores its bucket
     * there, so that an eviction finds the entry's slot from one dense array instead of reading
     * every entry's header (a DRAM miss each). Only for an entry this thread allocated and has not
     * yet reported {@link #written}.
     */
    long trailerOf(long address) {
        int c = chunkOf(address);
        long start = base + ((long) c << chunkShift);
        int cls = chunkClass[c];
        int stride = strides[cls];
        return start + (long) perChunk[cls] * stride + (long) Integer.BYTES * ((address - start) / stride);
    }

    /** A get hit an entry at {@code address}: give its chunk a second chance (written only if clear). */
    void touch(long address) {
        int c = chunkOf(address);
        if ((byte) BYTES.getOpaque(referenced, c) == 0) {
            BYTES.setOpaque(referenced, c, (byte) 1);
        }
    }

    /**
     * Reserves room for one entry of class {@code cls} and registers the caller as a writer of its
     * chunk (which then cannot be evicted until {@link #written}); may evict chunks first. The
     * class lock is held only to bump the pointer or install a chunk: a chunk is taken (and room
     * made for it by eviction) without it, so that meanwhile the class's other puts use a chunk
     * another thread installed, and compaction can move entries into this class.
     */
    long allocate(OffHeapCache.Session session, int cls) {
        int stride = strides[cls];
        ReentrantLock lock = classLocks[cls];
        int spare = -1;
        try {
            while (true) {
                lock.lock();
                try {
                    long a = next[cls];
                    if (openChunk[cls] >= 0 && a + stride <= end[cls]) {
                        // Room (perhaps in a chunk another thread installed while this one took a
                        // spare). The spare goes back before this put registers as a writer: an
                        // eviction holding the eviction lock may be waiting for that chunk's writers.
                        if (spare >= 0) {
                            giveBack(spare);
                            spare = -1;
                        }
                        next[cls] = a + stride;
                        writers.getAndIncrement(chunkOf(a));
                        return a;
                    }
                    int old = openChunk[cls];
                    if (old >= 0) {
                        // Full: evictable from now on; the class has no open chunk until one is installed.
                        INTS.setRelease(state, old, FULL);
                        openChunk[cls] = -1;
                    }
                    if (spare >= 0) {
                        openChunk[cls] = spare;
                        a = base + ((long) spare << chunkShift);
                        end[cls] = a + (long) perChunk[cls] * stride;
                        next[cls] = a + stride;
                        writers.getAndIncrement(spare);
                        spare = -1;
                        return a;
                    }
                } finally {
                    lock.unlock();
                }
                spare = takeChunk(session, cls);
            }
        } finally {
            if (spare >= 0) {
                giveBack(spare);    // only if an exception came between the take and the install
            }
        }
    }

    /**
     * A chunk taken but not installed (another thread installed one first): free again, unwritten by
     * this use. If it is resident, the next take prefers it and {@link #trim} drops it.
     */
    private void giveBack(int c) {
        synchronized (evictLock) {
            INTS.setRelease(state, c, FREE);
            pushFree(c);
            inUse--;
        }
    }

    /** Holds evictLock. */
    private void pushFree(int c) {
        freeStack[freeTop++] = c;
        residentFree += resident[c] ? 1 : 0;
    }

    /** The free chunk to take next: a resident one if there is one (no fault), else the top. Holds evictLock. */
    private int popFree() {
        if (residentFree > 0) {
            for (int i = freeTop - 1; i >= 0; i--) {
                int c = freeStack[i];
                if (resident[c]) {
                    freeStack[i] = freeStack[freeTop - 1];
                    freeTop--;
                    residentFree--;
                    return c;
                }
            }
        }
        return freeStack[--freeTop];
    }

    /**
     * For compaction inside an eviction: room for one entry of class {@code cls} in its open chunk,
     * or -1 if that chunk is full or its lock is busy (never waits, never takes a chunk, so an
     * eviction holding other locks cannot deadlock here). Registers the caller as a writer.
     */
    long tryAllocate(int cls) {
        int stride = strides[cls];
        ReentrantLock lock = classLocks[cls];
        if (!lock.tryLock()) {
            return -1;
        }
        try {
            long a = next[cls];
            if (openChunk[cls] < 0 || a + stride > end[cls]) {
                return -1;
            }
            next[cls] = a + stride;
            writers.getAndIncrement(chunkOf(a));
            return a;
        } finally {
            lock.unlock();
        }
    }

    /** An entry at {@code address} of {@code bytes} bytes was linked (positive) or unlinked (negative). */
    void live(long address, int bytes) {
        liveBytes.getAndAdd(chunkOf(address), bytes);
    }

    /** The writer of the entry at {@code address} is done (published or abandoned). */
    void written(long address) {
        writers.getAndDecrement(chunkOf(address));
    }

    private int takeChunk(OffHeapCache.Session session, int cls) {
        synchronized (evictLock) {
            int c = -1;
            try {
                while (inUse >= maxChunks) {
                    // The first chunk evicted is this put's, pages and all; any further one (the budget
                    // was exceeded while every chunk was open) gives its pages back.
                    int e = evictOne(session, c < 0);
                    if (e == NONE) {
                        break;
                    }
                    c = c < 0 && e != DROPPED ? e : c;
                }
            } catch (RuntimeException | Error t) {
                if (c >= 0) {
                    pushFree(c);    // kept for this put, which fails: free, resident, for the next take
                }
                throw t;
            }
            if (inUse >= maxChunks) {
                overBudget++;
            }
            if (c >= 0) {
                recycledChunks++;
            } else if (freeTop > 0) {
                c = popFree();
            } else if (fresh < chunkCount) {
                c = fresh++;
            } else {
                throw new IllegalStateException("slab region exhausted: " + chunkCount + " chunks in use");
            }
            inUse++;
            chunkClass[c] = cls;
            BYTES.setOpaque(referenced, c, (byte) 0);
            INTS.setRelease(state, c, OPEN);
            return c;
        }
    }

    /**
     * CLOCK: a referenced chunk loses its bit (second chance), unless fewer than half of its bytes
     * are still live (its entries were mostly replaced): then it is compacted, its live entries,
     * recently read, copied forward into their classes' open chunks where there is room; an
     * unreferenced chunk is evicted. Returns the chunk evicted if it is kept (resident, off the free
     * stack: only if {@code keep} and its stride is at least {@link #RECYCLE_MIN_STRIDE}), DROPPED
     * if it went on the free stack, or NONE if two sweeps found no full chunk (every chunk is open).
     * Holds evictLock.
     */
    private int evictOne(OffHeapCache.Session session, boolean keep) {
        int limit = fresh;
        for (int step = 0; step < 2 * limit + 1; step++) {
            int c = hand;
            hand = hand + 1 >= limit ? 0 : hand + 1;
            if ((int) INTS.getAcquire(state, c) != FULL) {
                continue;
            }
            if ((byte) BYTES.getOpaque(referenced, c) != 0) {
                BYTES.setOpaque(referenced, c, (byte) 0);
                if (liveBytes.get(c) >= chunkBytes / 2) {
                    continue;
                }
                return evict(session, c, true, keep) ? c : DROPPED;
            }
            return evict(session, c, false, keep) ? c : DROPPED;
        }
        return NONE;
    }

    /** Evicts chunk {@code c}; returns whether it was kept for recycling rather than dropped. */
    private boolean evict(OffHeapCache.Session session, int c, boolean compact, boolean keep) {
        INTS.setRelease(state, c, EVICTING);
        // Writers registered before the chunk was closed finish their copy and publish first.
        for (int spins = 0; writers.get(c) != 0; spins++) {
            if (spins < 100) {
                Thread.onSpinWait();
            } else {
                Thread.yield();
            }
        }
        int cls = chunkClass[c];
        long chunk = base + ((long) c << chunkShift);
        boolean recycle = unlinker.unlinkChunk(session, chunk, strides[cls], perChunk[cls], compact,
                keep && strides[cls] >= RECYCLE_MIN_STRIDE);
        // Unlinked first: from here no slot points into the chunk; a reader that still holds an old
        // reference retries (see the class comment).
        liveBytes.set(c, 0);
        INTS.setRelease(state, c, FREE);
        inUse--;
        evictedChunks++;
        resident[c] = recycle;
        if (!recycle) {
            as.madvise(chunk, chunkBytes, Advice.DONTNEED);
            pushFree(c);
        }
        return recycle;
    }

    /**
     * Evicts until at most {@code chunks} are in use or every chunk in use is open, then drops the
     * pages of free chunks still resident, so that resident memory falls by every chunk freed.
     */
    void trim(OffHeapCache.Session session, long chunks) {
        synchronized (evictLock) {
            while (inUse > chunks && evictOne(session, false) != NONE) {
                // one more chunk freed
            }
            for (int i = 0; i < freeTop && residentFree > 0; i++) {
                int c = freeStack[i];
                if (resident[c]) {
                    as.madvise(base + ((long) c << chunkShift), chunkBytes, Advice.DONTNEED);
                    resident[c] = false;
                    residentFree--;
                }
            }
        }
    }

    /** Chunks in use now. */
    long chunksInUse() {
        synchronized (evictLock) {
            return inUse;
        }
    }

    /** Chunks evicted so far. */
    long evictedChunks() {
        synchronized (evictLock) {
            return evictedChunks;
        }
    }

    /** Chunks evicted and handed to a put with their pages, instead of dropped and faulted in anew. */
    long recycledChunks() {
        synchronized (evictLock) {
            return recycledChunks;
        }
    }

    /** Chunks taken beyond the budget because every chunk in use was open. */
    long overBudget() {
        synchronized (evictLock) {
            return overBudget;
        }
    }

    void close() {
        as.munmap(mapped, regionBytes + (huge ? HUGE : 0));
    }
}
