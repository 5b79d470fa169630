package dev.offmm.examples.cache;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.Advice;
import dev.offmm.core.FaultException;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Mmu;
import dev.offmm.core.Prot;
import dev.offmm.core.VmConfig;
import dev.offmm.core.VmStats;
import dev.offmm.offheap.PhysicalMemory;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicIntegerArray;

/**
 * A concurrent off-heap cache of {@code long} keys and variable-size {@code byte[]} values
 * (0 to {@link Builder#maxValueBytes} bytes) on offmm, with no Java object per entry.
 *
 * <h2>Layout</h2>
 * The cache owns a {@link PhysicalMemory} sized to its budget plus the index and an
 * {@link AddressSpace} with two {@code NORESERVE} mappings:
 * <ul>
 * <li>the <b>index</b>: {@code 2^k} buckets of one cache line, 8 slots of one word each,
 *   {@code tag(12) | length(16) | entry reference(36)}, 0 = empty. A key lives only in its home
 *   bucket (no probe chains, so no tombstones); a full bucket drops one of its entries, which a
 *   cache may do. The bucket count is fixed at construction from the expected entries (three per
 *   bucket on average at most, eight at most): the index is not resized.</li>
 * <li>the <b>slabs</b> ({@link Slabs}): size classes carved in chunks from a reservation four times
 *   the budget; an entry is {@code stamp(8) | key(8) | value}.</li>
 * </ul>
 *
 * <h2>Concurrency</h2>
 * Gets take no lock and write nothing shared but a chunk's reference bit (only when clear): they
 * copy the bucket (one access; a torn copy is caught by the checks below), and for a slot whose
 * tag matches, make a seqlock read of the entry: the stamp (acquire), the key, the value, a
 * load-load fence, the stamp again and the slot again. A stamp is unique over the cache's life
 * (session id and counter) and set, by a release store, only after the entry is written, and an
 * entry is never changed in place: it is written once, and its memory is reused only after its
 * slot was cleared: dropped (zero again), or recycled, which first zeroes the stamp and key of every
 * entry of the chunk, while each writer zeroes its own stamp before its other bytes (store-store
 * fences; that a reader who sees a later use's byte also sees those zeros relies on the hardware's
 * multi-copy atomicity, x86-TSO or ARMv8, as seqlocks do). So equal stamps, the key and an unchanged
 * slot mean the copy is the whole value of that key, published at the time; anything else retries.
 * What remains is what zeroed pages left too: a reader stalled across two reuses of a chunk, whose
 * slot word is republished unchanged, and the later uses' bytes equal to the old stamp and key.
 * Puts copy the entry outside any lock, then publish it under the stripe lock of the key's hash
 * with a CAS; eviction unlinks with a CAS of the exact slot word to 0, so a put and an eviction of
 * the same slot settle by which CAS wins.
 *
 * <h2>Threads</h2>
 * Each thread works through its own {@link Session} ({@link #session()}, like an {@link Mmu});
 * the methods on the cache itself use a per-thread session of their own.
 */
public final class OffHeapCache implements AutoCloseable {
    /** The largest {@link Builder#maxValueBytes}: lengths are 16 bits in a slot. */
    public static final int MAX_VALUE_LIMIT = 0xFFFF;
    static final int HEADER = 16;
    static final int SLOTS = 8;
    private static final int STRIPES = 4096;
    private static final int LEN_SHIFT = 36;
    static final long REF_MASK = (1L << LEN_SHIFT) - 1;
    private static final int TAG_SHIFT = 52;
    /** Retries of one get before it gives up on an index that cannot be right (see {@code Session.get}). */
    private static final int MAX_RETRIES = 1 << 20;
    private static final VarHandle LONGS = MethodHandles.arrayElementVarHandle(long[].class);
    /** An entry header's worth of zeros, for recycling (never written). */
    private static final byte[] ZERO_HEADER = new byte[HEADER];
    /** Entries of an evicted chunk whose buckets are loaded ahead, together, before they are unlinked. */
    private static final int WARM_GROUP = 16;
    private static final VarHandle SLOT_BYTES = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle TRAILER_BYTES = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);

    private final PhysicalMemory memory;
    private final AddressSpace as;
    private final Slabs slabs;
    private final long indexMapping;
    private final long indexBase;
    private final long indexBytes;
    private final long bucketMask;
    private final long maxRef;
    private final int maxValueBytes;
    private final long budgetBytes;
    private final AtomicIntegerArray stripes = new AtomicIntegerArray(STRIPES);
    private final CopyOnWriteArrayList<Session> sessions = new CopyOnWriteArrayList<>();
    private final ThreadLocal<Session> local = new ThreadLocal<>();
    private int sessionIds;
    private volatile boolean closed;

    private OffHeapCache(Builder b) {
        this.maxValueBytes = b.maxValueBytes;
        this.budgetBytes = b.budgetBytes;
        long buckets = Long.highestOneBit(Math.max(64, (b.expectedEntries + 2) / 3) - 1) << 1;
        this.bucketMask = buckets - 1;
        this.indexBytes = buckets * SLOTS * Long.BYTES;
        boolean hugeIndex = indexBytes >= Slabs.HUGE;
        int maxEntry = HEADER + maxValueBytes;
        long chunk = b.chunkBytes != 0 ? b.chunkBytes : defaultChunk(b.budgetBytes, maxEntry);
        if (chunk < 8L * maxEntry || Long.bitCount(chunk) != 1 || chunk < AddressSpace.PAGE_SIZE) {
            throw new IllegalArgumentException("chunkBytes=" + chunk + " (expected a power of two >= 4096 and >= 8 entries of "
                    + maxEntry + " bytes)");
        }
        if (b.budgetBytes < 64 * chunk) {
            throw new IllegalArgumentException("budgetBytes=" + b.budgetBytes + " (expected >= 64 chunks of " + chunk
                    + " bytes: lower maxValueBytes or chunkBytes, or raise the budget)");
        }
        // Frames: the budget, the index, page tables and room for chunks in flight.
        long frames = b.budgetBytes + indexBytes + b.budgetBytes / 8 + 64 * chunk + (64L << 20);
        long huge = PhysicalMemory.HUGE_PAGE_SIZE;
        this.memory = PhysicalMemory.builder().capacity(Math.min(PhysicalMemory.MAX_BYTES, (frames + huge - 1) / huge * huge))
                .hostHugePages(b.hostHugePages).build();
        AddressSpace space = null;
        try {
            space = AddressSpace.create(memory, VmConfig.defaults());
            this.indexMapping = space.mmap(0, indexBytes + (hugeIndex ? Slabs.HUGE : 0), Prot.READ | Prot.WRITE,
                    MapFlags.NORESERVE);
            this.indexBase = hugeIndex ? (indexMapping + Slabs.HUGE - 1) & -Slabs.HUGE : indexMapping;
            if (hugeIndex) {
                // Committed now, in huge pages (a get's read fault would map 4 KiB zero pages).
                space.madvise(indexBase, indexBytes, Advice.HUGEPAGE);
                for (long a = indexBase; a < indexBase + indexBytes; a += Slabs.HUGE) {
                    space.putLong(a, 0);
                }
            }
            this.slabs = new Slabs(space, b.budgetBytes, chunk, maxEntry, this::unlinkChunk);
            this.as = space;
        } catch (RuntimeException | Error e) {
            if (space != null) {
                space.close();
            }
            memory.close();
            throw e;
        }
        this.maxRef = slabs.regionBytes / Slabs.ALIGN;
    }

    /**
     * A chunk of at least 8 of the largest entries and about 1/256 of the budget, 64 KiB to 2 MiB
     * (each size class keeps one chunk open, so small chunks waste less of a small budget): from a
     * 512 MiB budget on, chunks are huge pages (one TLB entry each).
     */
    static long defaultChunk(long budget, int maxEntry) {
        long c = Math.clamp(Long.highestOneBit(Math.max(1, budget / 256)), 64L << 10, 2L << 20);
        while (c < 8L * maxEntry) {
            c <<= 1;
        }
        return c;
    }

    /** A builder with a 64 MiB budget, 100,000 expected entries and values up to 16 KiB. */
    public static Builder builder() {
        return new Builder();
    }

    // ---- the calling thread's session

    /** {@link Session#get(long, byte[])} on the calling thread's session. */
    public int get(long key, byte[] dst) {
        return mine().get(key, dst);
    }

    /** {@link Session#get(long)} on the calling thread's session. */
    public byte[] get(long key) {
        return mine().get(key);
    }

    /** {@link Session#put(long, byte[])} on the calling thread's session. */
    public void put(long key, byte[] value) {
        mine().put(key, value);
    }

    /** {@link Session#put(long, byte[], int, int)} on the calling thread's session. */
    public void put(long key, byte[] value, int off, int len) {
        mine().put(key, value, off, len);
    }

    /** {@link Session#remove(long)} on the calling thread's session. */
    public boolean remove(long key) {
        return mine().remove(key);
    }

    /**
     * The calling thread's session, opened (an {@link Mmu} attached) on first use: one per thread,
     * shared with the methods on the cache itself. Closing it detaches; the next call opens anew.
     */
    public Session session() {
        Session s = local.get();
        if (s != null) {
            return s;
        }
        ensureOpen();
        int id;
        synchronized (sessions) {
            id = ++sessionIds;
        }
        s = new Session(as.attach(), id);
        sessions.add(s);
        local.set(s);
        return s;
    }

    private Session mine() {
        Session s = local.get();
        return s != null ? s : session();
    }

    /**
     * Evicts full chunks (CLOCK order, reference bits honoured) until at most {@code bytes} of
     * slab memory is in use or only open chunks remain; their pages go back at once.
     */
    public void trimTo(long bytes) {
        if (bytes < 0) {
            throw new IllegalArgumentException("bytes=" + bytes + " (expected >= 0)");
        }
        slabs.trim(mine(), bytes / slabs.chunkBytes);
    }

    // ---- stats and lifecycle

    /** Counters and memory now. */
    public CacheStats stats() {
        long[] sum = new long[Session.COUNTERS];
        for (Session s : sessions) {
            for (int i = 0; i < sum.length; i++) {
                sum[i] += (long) LONGS.getOpaque(s.counts, i);
            }
        }
        VmStats vm = as.stats();
        return new CacheStats(sum[Session.HITS], sum[Session.MISSES], sum[Session.PUTS], sum[Session.REMOVES],
                sum[Session.EVICTIONS], sum[Session.COLLISIONS], slabs.evictedChunks(), sum[Session.ENTRIES],
                sum[Session.LIVE_BYTES], slabs.chunksInUse() * slabs.chunkBytes, budgetBytes, indexBytes,
                vm.rssPages() * AddressSpace.PAGE_SIZE, vm.pageTableBytes(), sum[Session.MOVES],
                slabs.recycledChunks());
    }

    /** The largest value accepted. */
    public int maxValueBytes() {
        return maxValueBytes;
    }

    /** Bytes per slab chunk (the eviction unit). */
    public long chunkBytes() {
        return slabs.chunkBytes;
    }

    /** The cache's address space, for inspection ({@code stats()}, {@code mappings()}). */
    public AddressSpace addressSpace() {
        return as;
    }

    /**
     * Unmaps everything and closes the address space (which verifies nothing leaked) and the
     * memory. No session may be used concurrently or afterwards.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            slabs.close();
            as.munmap(indexMapping, indexBytes + (indexBytes >= Slabs.HUGE ? Slabs.HUGE : 0));
            as.close();
        } finally {
            memory.close();
        }
    }

    /** For tests: drops every slab page without unlinking, so each slot names an entry that is gone. */
    void dropSlabsBehindTheIndexForTesting() {
        as.madvise(slabs.base, slabs.regionBytes, Advice.DONTNEED);
    }

    /** For tests: the value store. */
    Slabs slabsForTesting() {
        return slabs;
    }

    /** For tests: the address of the bucket of {@code key}. */
    long bucketForTesting(long key) {
        return bucketOf(mix(key));
    }

    /** For tests: the address of the entry that the index names for {@code key}, or -1 if none does. */
    long entryOfForTesting(long key) {
        Mmu mmu = mine().mmu;
        long h = mix(key);
        long b = bucketOf(h);
        for (int i = 0; i < SLOTS; i++) {
            long w = mmu.getLongAcquire(b + 8L * i);
            if (w != 0 && w >>> TAG_SHIFT == h >>> TAG_SHIFT && mmu.getLong(entryOf(w) + 8) == key) {
                return entryOf(w);
            }
        }
        return -1;
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("cache is closed");
        }
    }

    // ---- index

    /** The 12-bit tag of a slot word or of a key's hash. */
    static long tagOf(long word) {
        return word >>> TAG_SHIFT;
    }

    /**
     * {@return a consistent, read-only copy of the cache as it is now} taken with
     * {@link AddressSpace#fork()}: see {@link CacheSnapshot}. Puts, removes and evictions go on
     * meanwhile and never show in it; the cache pays a page copy where it writes afterwards.
     * Confined to the calling thread.
     *
     * @throws IllegalStateException if the cache is closed
     */
    public CacheSnapshot snapshot() {
        ensureOpen();
        return new CacheSnapshot(as.fork(), indexBase, bucketMask + 1, slabs.base, maxRef, maxValueBytes);
    }

    static long mix(long key) {
        long z = key * 0x9E3779B97F4A7C15L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    private long bucketOf(long h) {
        return indexBase + ((h & bucketMask) << 6);
    }

    private long entryOf(long word) {
        return slabs.base + (((word & REF_MASK) - 1) << 4);
    }

    private long wordOf(long h, int len, long entry) {
        return (h >>> TAG_SHIFT) << TAG_SHIFT | (long) len << LEN_SHIFT | (((entry - slabs.base) >>> 4) + 1);
    }

    static int lengthOf(long word) {
        return (int) (word >>> LEN_SHIFT) & 0xFFFF;
    }

    private void lock(long h) {
        int i = (int) (h & (STRIPES - 1));
        for (int spins = 0; !stripes.compareAndSet(i, 0, 1); spins++) {
            if (spins < 64) {
                Thread.onSpinWait();
            } else {
                Thread.yield();
            }
        }
    }

    private void unlock(long h) {
        stripes.setRelease((int) (h & (STRIPES - 1)), 0);
    }

    /**
     * Eviction of a chunk: clears every slot that still points into it (no lock: CAS of the exact
     * word), or with {@code compact} first tries to move the entry: a copy with a new stamp in its
     * class's open chunk, linked by a CAS from the exact old word (a put or remove of the key that
     * won meanwhile makes the copy garbage). Readers see either entry whole, by the same protocol.
     * Without compaction the entries themselves are not read: the chunk's trailer names each one's
     * bucket, read a block at a time. Returns whether the chunk may be recycled (see {@link Slabs}).
     */
    private boolean unlinkChunk(Session s, long chunk, int stride, int count, boolean compact, boolean recycle) {
        Mmu mmu = s.mmu;
        long freed = 0;
        long entries = 0;
        long trailer = chunk + (long) count * stride;
        byte[] block = s.trailerBlock();
        int perBlock = block.length / Integer.BYTES;
        for (int first = 0; first < count; first += perBlock) {
            int n = Math.min(perBlock, count - first);
            mmu.read(trailer + (long) Integer.BYTES * first, block, 0, n * Integer.BYTES);
            for (int group = 0; group < n; group += WARM_GROUP) {
                int end = Math.min(n, group + WARM_GROUP);
                // The buckets of a group are loaded first, all of them, with plain loads and no atomic in
                // between: their cache misses overlap. Each unlink's CAS waits for every load before it,
                // so a load issued just before it would be one miss at a time, as the unlinks alone are.
                for (int i = group; i < end; i++) {
                    long bucket = bucketOfTrailer((int) TRAILER_BYTES.get(block, i * Integer.BYTES));
                    if (bucket >= 0) {
                        s.warm(bucket);
                        if (compact) {
                            s.warm(chunk + (long) (first + i) * stride + 8);    // the key, which a move reads
                        }
                    }
                }
                for (int i = group; i < end; i++) {
                    // Never written (bucket < 0): its put failed before it wrote the trailer, which holds
                    // zeros (a fresh chunk) or a recycled chunk's old bytes; no slot names the entry.
                    long bucket = bucketOfTrailer((int) TRAILER_BYTES.get(block, i * Integer.BYTES));
                    if (bucket < 0) {
                        continue;
                    }
                    long e = chunk + (long) (first + i) * stride;
                    long ref = ((e - slabs.base) >>> 4) + 1;
                    long w = compact ? s.moveOrUnlink(e, bucket, ref) : s.unlinkSlot(bucket, ref);
                    if (w != 0) {
                        freed += lengthOf(w);
                        entries++;
                    }
                }
            }
        }
        s.add(Session.EVICTIONS, entries);
        s.add(Session.ENTRIES, -entries);
        s.add(Session.LIVE_BYTES, -freed);
        if (!recycle) {
            return false;
        }
        // The chunk is written again without being dropped first. Every entry's header, live or not
        // (a reader may hold the slot word of one replaced long ago), goes to 0 before any byte of
        // the next use: the stamp, so that a reader that saw it and then a later byte sees it
        // changed; and the key, so that a reader whose "stamp" is a later use's value bytes (an
        // entry of another class over this one) does not find the old key after it, which is what
        // a dropped page's zeros guaranteed.
        try {
            for (int i = 0; i < count; i++) {
                mmu.write(chunk + (long) i * stride, ZERO_HEADER, 0, HEADER);   // one access: 16-aligned, in one page
            }
        } catch (FaultException e) {
            return false;   // no frame for a copy-on-write under a snapshot: drop the chunk instead
        }
        VarHandle.storeStoreFence();
        return true;
    }

    /** The bucket a trailer int names (its bucket + 1), or -1 for 0 or a value that names no bucket. */
    private long bucketOfTrailer(int code) {
        long b = Integer.toUnsignedLong(code) - 1;
        return code == 0 || b > bucketMask ? -1 : indexBase + (b << 6);
    }

    /**
     * One thread's handle on the cache: its {@link Mmu}, a bucket buffer, its stamps and its counters. Confined
     * to the thread that opened it; the cache stays usable after a session closes.
     */
    public final class Session implements AutoCloseable {
        static final int HITS = 0;
        static final int MISSES = 1;
        static final int PUTS = 2;
        static final int REMOVES = 3;
        static final int EVICTIONS = 4;
        static final int COLLISIONS = 5;
        static final int ENTRIES = 6;
        static final int LIVE_BYTES = 7;
        static final int MOVES = 8;
        static final int COUNTERS = 9;

        final Mmu mmu;
        /**
         * The bucket's copy. A {@code byte[]}: a copy into a heap array takes fewer checks than one
         * into a heap segment (issue 17's {@code CacheReadBenchmark}: 64-byte reads 1.1-1.9x faster).
         */
        private final byte[] bucket = new byte[SLOTS * Long.BYTES];
        /** Written by the owner only (opaque), summed by {@link #stats()}; padded against false sharing. */
        final long[] counts = new long[COUNTERS + 16];
        private final long stampBase;
        private long stamps;
        /** For compaction only (a value in flight), allocated on first use. */
        private byte[] scratch;
        /** For eviction only: a block of a chunk's trailer (little-endian ints), allocated on first use. */
        private byte[] trailer;
        /** The sum of {@link #warm}'s loads, never read: it keeps them live. */
        private long warmSink;

        Session(Mmu mmu, int id) {
            this.mmu = mmu;
            this.stampBase = (long) id << 41;
        }

        /**
         * Loads a long at {@code va} to bring its line into the cache ahead of use; the sum goes to a
         * field so that the JIT keeps the load. A plain load: several in a row overlap their misses.
         */
        void warm(long va) {
            warmSink += mmu.getLong(va);
        }

        void add(int counter, long delta) {
            LONGS.setOpaque(counts, counter, (long) LONGS.getOpaque(counts, counter) + delta);
        }

        /**
         * Copies the value of {@code key} into {@code dst} (its first {@code min(length, dst.length)}
         * bytes) and returns the value's length, or returns -1 if the key is absent. Allocates nothing.
         */
        public int get(long key, byte[] dst) {
            if (dst == null) {
                throw new IllegalArgumentException("dst is null");
            }
            long h = mix(key);
            long b = bucketOf(h);
            long tag = h >>> TAG_SHIFT;
            int retries = 0;
            retry:
            while (true) {
                if (++retries > MAX_RETRIES) {
                    // A retry waits for a writer or an eviction that is under way; this many in a row
                    // mean a slot names an entry that is gone for good: a bug, reported, not a hang.
                    throw new IllegalStateException("get(" + key + "): bucket 0x" + Long.toHexString(b) + " still names"
                            + " an entry being written or dropped after " + MAX_RETRIES + " retries; the index is corrupt");
                }
                // The whole bucket in one access (a miss looks at every slot).
                mmu.read(b, bucket, 0, bucket.length);
                // The slot words before the entry's stamp: a chunk is reused (recycled, or dropped and
                // refaulted) only after its slots were cleared, and this keeps that order for the reader.
                VarHandle.loadLoadFence();
                for (int i = 0; i < SLOTS; i++) {
                    long w = slotOfCopy(i);
                    if (w == 0 || w >>> TAG_SHIFT != tag) {
                        continue;
                    }
                    long ref = w & REF_MASK;
                    if (ref == 0 || ref > maxRef) {
                        continue retry;     // torn
                    }
                    long e = entryOf(w);
                    long stamp = mmu.getLongAcquire(e);
                    if (stamp == 0) {
                        continue retry;
                    }
                    boolean same = mmu.getLong(e + 8) == key;
                    int len = lengthOf(w);
                    if (same) {
                        mmu.read(e + HEADER, dst, 0, Math.min(len, dst.length));
                    }
                    VarHandle.loadLoadFence();
                    if (mmu.getLong(e) != stamp || mmu.getLong(b + 8L * i) != w) {
                        continue retry;
                    }
                    if (same) {
                        slabs.touch(e);
                        add(HITS, 1);
                        return len;
                    }
                }
                add(MISSES, 1);
                return -1;
            }
        }

        /** The value of {@code key} in a new array, or null if absent. */
        public byte[] get(long key) {
            byte[] v = new byte[256];
            while (true) {
                int n = get(key, v);
                if (n < 0) {
                    return null;
                }
                if (n <= v.length) {
                    return n == v.length ? v : java.util.Arrays.copyOf(v, n);
                }
                v = new byte[n];
            }
        }

        /** Stores {@code value} under {@code key}. */
        public void put(long key, byte[] value) {
            if (value == null) {
                throw new IllegalArgumentException("value is null");
            }
            put(key, value, 0, value.length);
        }

        /**
         * Stores {@code value[off .. off+len)} under {@code key}, replacing its value; may evict.
         *
         * @throws IllegalArgumentException if the range is not in the array or {@code len} exceeds
         *     {@link Builder#maxValueBytes}
         */
        public void put(long key, byte[] value, int off, int len) {
            if (value == null) {
                throw new IllegalArgumentException("value is null");
            }
            if (off < 0 || len < 0 || off > value.length - len) {
                throw new IllegalArgumentException("off=" + off + ", len=" + len + " (expected a range of value["
                        + value.length + "])");
            }
            if (len > maxValueBytes) {
                throw new IllegalArgumentException("len=" + len + " (expected <= maxValueBytes=" + maxValueBytes + ")");
            }
            int cls = slabs.classFor(HEADER + len);
            long h = mix(key);
            long e = slabs.allocate(this, cls);
            try {
                // The bucket's miss overlaps the value's copy; publish's lock would wait for it otherwise.
                warm(bucketOf(h));
                clearStamp(e);
                writeTrailer(e, h);
                mmu.putLong(e + 8, key);
                mmu.write(e + HEADER, value, off, len);
                mmu.putLongRelease(e, nextStamp());
                publish(h, key, wordOf(h, len, e));
            } finally {
                slabs.written(e);
            }
            add(PUTS, 1);
        }

        private void publish(long h, long key, long word) {
            long b = bucketOf(h);
            long tag = h >>> TAG_SHIFT;
            // A replace takes the lock too. Without it, a slot word seen naming the key's entry can
            // name another key's entry by the time of the CAS (the chunk evicted and reused at the
            // same address, same tag and length) while a third put inserts the key elsewhere: two
            // slots for one key, and an older value returned after a newer one.
            lock(h);
            try {
                // Under the stripe lock, other threads change slots of this bucket only to 0 (evictions),
                // from one entry of a key to a moved copy of it (compaction) or, for keys of other
                // stripes, insert and replace; a failed CAS rescans.
                while (true) {
                    int free = -1;
                    for (int i = 0; i < SLOTS; i++) {
                        long a = b + 8L * i;
                        long w = mmu.getLongAcquire(a);
                        if (w == 0) {
                            free = free < 0 ? i : free;
                        } else if (w >>> TAG_SHIFT == tag && mmu.getLong(entryOf(w) + 8) == key) {
                            if (mmu.compareAndSetLong(a, w, word)) {
                                add(LIVE_BYTES, lengthOf(word) - lengthOf(w));
                                linked(word, w);
                                return;
                            }
                            free = i;
                        }
                    }
                    if (free >= 0) {
                        if (mmu.compareAndSetLong(b + 8L * free, 0, word)) {
                            add(ENTRIES, 1);
                            add(LIVE_BYTES, lengthOf(word));
                            linked(word, 0);
                            return;
                        }
                        continue;
                    }
                    // Full bucket: drop one entry (chosen by the hash's middle bits).
                    int v = (int) (h >>> 32) & (SLOTS - 1);
                    long a = b + 8L * v;
                    long w = mmu.getLongAcquire(a);
                    if (w != 0 && mmu.compareAndSetLong(a, w, word)) {
                        add(COLLISIONS, 1);
                        add(LIVE_BYTES, lengthOf(word) - lengthOf(w));
                        linked(word, w);
                        return;
                    }
                }
            } finally {
                unlock(h);
            }
        }

        /** Slot {@code i} of the bucket's copy (little-endian, as {@link Mmu} stores a long). */
        private long slotOfCopy(int i) {
            return (long) SLOT_BYTES.get(bucket, i * Long.BYTES);
        }

        byte[] trailerBlock() {
            if (trailer == null) {
                trailer = new byte[1024 * Integer.BYTES];
            }
            return trailer;
        }

        /**
         * Zeroes the stamp of the entry at {@code e} before any other byte of it is written. In a
         * recycled chunk {@code e} may hold an older use's bytes (the middle of an entry of another
         * size class): a reader that read them as a stamp and then reads bytes of this entry finds
         * them changed on its second look.
         */
        private void clearStamp(long e) {
            mmu.putLong(e, 0);
            VarHandle.storeStoreFence();
        }

        /** Writes the trailer int of the entry at {@code e}, whose key hashes to {@code h}: its bucket + 1. */
        private void writeTrailer(long e, long h) {
            mmu.putInt(slabs.trailerOf(e), (int) (h & bucketMask) + 1);
        }

        /**
         * Clears the slot of {@code bucket} that names the entry {@code ref}; returns the word it
         * held, or 0 if none did (the entry was replaced or removed). The bucket is copied in one
         * access to find the slot; only a CAS of the exact word clears it, and "none" is decided
         * from exact loads, since a slot left pointing into an evicted chunk would make gets retry
         * for ever.
         */
        long unlinkSlot(long bucket, long ref) {
            mmu.read(bucket, this.bucket, 0, this.bucket.length);
            for (int j = 0; j < SLOTS; j++) {
                long w = slotOfCopy(j);
                if ((w & REF_MASK) == ref && mmu.compareAndSetLong(bucket + 8L * j, w, 0)) {
                    return w;
                }
            }
            for (int j = 0; j < SLOTS; j++) {
                long a = bucket + 8L * j;
                while (true) {
                    long w = mmu.getLongAcquire(a);
                    if ((w & REF_MASK) != ref) {
                        break;
                    }
                    if (mmu.compareAndSetLong(a, w, 0)) {
                        return w;
                    }
                }
            }
            return 0;
        }

        /**
         * Compaction of the entry {@code ref} at {@code e}: moved into its class's open chunk if
         * there is room (returns 0: it stays live), else unlinked (returns the word cleared, or 0).
         */
        long moveOrUnlink(long e, long bucket, long ref) {
            for (int j = 0; j < SLOTS; j++) {
                long a = bucket + 8L * j;
                long w = mmu.getLongAcquire(a);
                if ((w & REF_MASK) != ref) {
                    continue;
                }
                if (move(mmu.getLong(e + 8), e, w, a)) {
                    return 0;
                }
                return mmu.compareAndSetLong(a, w, 0) ? w : 0;
            }
            return 0;
        }

        private long nextStamp() {
            return stampBase | (++stamps << 1);
        }

        /**
         * Compaction: copies the entry at {@code e} (slot word {@code w} at {@code slot}) into its
         * class's open chunk and relinks it; false if there was no room (the caller unlinks it).
         */
        boolean move(long key, long e, long w, long slot) {
            int len = lengthOf(w);
            long ne = slabs.tryAllocate(slabs.classFor(HEADER + len));
            if (ne < 0) {
                return false;
            }
            try {
                if (scratch == null) {
                    scratch = new byte[maxValueBytes];
                }
                mmu.read(e + HEADER, scratch, 0, len);
                long h = mix(key);
                clearStamp(ne);
                writeTrailer(ne, h);
                mmu.putLong(ne + 8, key);
                mmu.write(ne + HEADER, scratch, 0, len);
                mmu.putLongRelease(ne, nextStamp());
                long nw = wordOf(h, len, ne);
                if (mmu.compareAndSetLong(slot, w, nw)) {
                    slabs.live(ne, HEADER + len);
                    add(MOVES, 1);
                }
                // Else a put or remove of the key replaced w first: nothing left to unlink.
                return true;
            } finally {
                slabs.written(ne);
            }
        }

        /** Slot word {@code now} replaced {@code was} (either may be 0): moves the chunks' live bytes. */
        private void linked(long now, long was) {
            if (now != 0) {
                slabs.live(entryOf(now), HEADER + lengthOf(now));
            }
            if (was != 0) {
                slabs.live(entryOf(was), -(HEADER + lengthOf(was)));
            }
        }

        /** Removes {@code key}; returns whether it was present. */
        public boolean remove(long key) {
            long h = mix(key);
            long b = bucketOf(h);
            long tag = h >>> TAG_SHIFT;
            lock(h);
            try {
                for (int i = 0; i < SLOTS; i++) {
                    long a = b + 8L * i;
                    // Again while the CAS fails: an eviction may have cleared the slot, or a
                    // compaction moved the key's entry (a new word for the same key).
                    while (true) {
                        long w = mmu.getLongAcquire(a);
                        if (w == 0 || w >>> TAG_SHIFT != tag || mmu.getLong(entryOf(w) + 8) != key) {
                            break;
                        }
                        if (mmu.compareAndSetLong(a, w, 0)) {
                            add(REMOVES, 1);
                            add(ENTRIES, -1);
                            add(LIVE_BYTES, -lengthOf(w));
                            linked(0, w);
                            return true;
                        }
                    }
                }
                return false;
            } finally {
                unlock(h);
            }
        }

        /** Detaches this session's {@link Mmu}; its counters stay in the stats. */
        @Override
        public void close() {
            mmu.close();
            if (local.get() == this) {
                local.remove();
            }
        }
    }

    /** Configuration of an {@link OffHeapCache}. */
    public static final class Builder {
        private long budgetBytes = 64L << 20;
        private long expectedEntries = 100_000;
        private int maxValueBytes = 16 << 10;
        private long chunkBytes;
        private boolean hostHugePages = true;

        private Builder() {
        }

        /**
         * Whether the cache's physical memory asks the host for 2 MiB pages ({@code MADV_HUGEPAGE};
         * default true): random reads over gigabytes then miss the CPU's TLB far less. Free 2 MiB
         * blocks still go back to the host whole.
         */
        public Builder hostHugePages(boolean on) {
            this.hostHugePages = on;
            return this;
        }

        /** Bytes of slab memory the cache may hold (entries with headers and slack); eviction keeps within it. */
        public Builder budgetBytes(long bytes) {
            if (bytes <= 0 || bytes > PhysicalMemory.MAX_BYTES / 2) {
                throw new IllegalArgumentException("budgetBytes=" + bytes + " (expected 1 .. "
                        + PhysicalMemory.MAX_BYTES / 2 + ")");
            }
            this.budgetBytes = bytes;
            return this;
        }

        /** Entries expected at most: sizes the index (fixed, never resized), 16 bytes per entry. */
        public Builder expectedEntries(long entries) {
            if (entries <= 0 || entries > 1L << 32) {
                throw new IllegalArgumentException("expectedEntries=" + entries + " (expected 1 .. 2^32)");
            }
            this.expectedEntries = entries;
            return this;
        }

        /** The largest value, in bytes (at most {@link #MAX_VALUE_LIMIT}). */
        public Builder maxValueBytes(int bytes) {
            if (bytes < 0 || bytes > MAX_VALUE_LIMIT) {
                throw new IllegalArgumentException("maxValueBytes=" + bytes + " (expected 0 .. " + MAX_VALUE_LIMIT + ")");
            }
            this.maxValueBytes = bytes;
            return this;
        }

        /** Bytes per slab chunk, the eviction unit (a power of two); 0 chooses from the budget. */
        public Builder chunkBytes(long bytes) {
            if (bytes < 0) {
                throw new IllegalArgumentException("chunkBytes=" + bytes + " (expected >= 0)");
            }
            this.chunkBytes = bytes;
            return this;
        }

        /** A new cache. */
        public OffHeapCache build() {
            return new OffHeapCache(this);
        }
    }
}
