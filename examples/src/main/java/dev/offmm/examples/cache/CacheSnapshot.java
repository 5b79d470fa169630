package dev.offmm.examples.cache;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.Mmu;

/**
 * A consistent, read-only copy of an {@link OffHeapCache} at one point in time, taken by
 * {@link OffHeapCache#snapshot()} through {@link AddressSpace#fork()}: the index and the slabs
 * are shared copy-on-write with the live cache, so taking one costs about a fork of the mapped
 * memory's page tables (shared, not copied) and the live cache pays a page copy only where it writes
 * afterwards. Puts, removes and evictions after the snapshot never show in it.
 *
 * <p>Every entry the snapshot's index points to is whole: a put publishes its slot only after the
 * entry is written, and an eviction drops or reuses a chunk only after unlinking its slots, so the
 * instant of the fork sees each slot either before or after, never in between. Nothing writes
 * the snapshot, so its reads need no seqlock.
 *
 * <p>Confined to the thread that took it (its {@link Mmu} is that thread's); close it on that thread.
 * Closing the cache does not close its snapshots.
 */
public final class CacheSnapshot implements AutoCloseable {
    /** Receives the entries of {@link #forEach}: {@code value[0 .. length)} is the key's value. */
    @FunctionalInterface
    public interface EntryVisitor {
        /**
         * One entry; {@code value} is reused for the next one.
         *
         * @param key    the key
         * @param value  a buffer holding the value's bytes
         * @param length the value's length
         */
        void visit(long key, byte[] value, int length);
    }

    private final AddressSpace space;
    private final Mmu mmu;
    private final long indexBase;
    private final long buckets;
    private final long slabBase;
    private final long maxRef;
    private final int maxValueBytes;
    private boolean closed;

    CacheSnapshot(AddressSpace space, long indexBase, long buckets, long slabBase, long maxRef, int maxValueBytes) {
        this.space = space;
        this.indexBase = indexBase;
        this.buckets = buckets;
        this.slabBase = slabBase;
        this.maxRef = maxRef;
        this.maxValueBytes = maxValueBytes;
        Mmu m;
        try {
            m = space.attach();
        } catch (RuntimeException | Error e) {
            space.close();
            throw e;
        }
        this.mmu = m;
    }

    /**
     * {@return the value's length, or -1 if {@code key} had no value at the snapshot} Copies at most
     * {@code dst.length} bytes of it into {@code dst}.
     *
     * @param key the key
     * @param dst the buffer the value is copied into
     */
    public int get(long key, byte[] dst) {
        if (dst == null) {
            throw new IllegalArgumentException("dst is null");
        }
        ensureOpen();
        long h = OffHeapCache.mix(key);
        long b = indexBase + ((h & (buckets - 1)) << 6);
        for (int i = 0; i < OffHeapCache.SLOTS; i++) {
            long w = mmu.getLong(b + 8L * i);
            if (w != 0 && OffHeapCache.tagOf(w) == OffHeapCache.tagOf(h) && (w & OffHeapCache.REF_MASK) <= maxRef) {
                long e = slabBase + (((w & OffHeapCache.REF_MASK) - 1) << 4);
                if (mmu.getLong(e + 8) == key) {
                    int len = OffHeapCache.lengthOf(w);
                    mmu.read(e + OffHeapCache.HEADER, dst, 0, Math.min(len, dst.length));
                    return len;
                }
            }
        }
        return -1;
    }

    /**
     * Visits every entry, bucket by bucket (an order of its own, not the keys'), and returns their
     * number.
     *
     * @param visitor receives each key and value; may be null to count only
     * @return the entries visited
     */
    public long forEach(EntryVisitor visitor) {
        ensureOpen();
        byte[] buf = new byte[maxValueBytes];
        long n = 0;
        for (long i = 0; i < buckets; i++) {
            long b = indexBase + (i << 6);
            for (int s = 0; s < OffHeapCache.SLOTS; s++) {
                long w = mmu.getLong(b + 8L * s);
                if (w == 0 || (w & OffHeapCache.REF_MASK) > maxRef) {
                    continue;
                }
                n++;
                if (visitor != null) {
                    long e = slabBase + (((w & OffHeapCache.REF_MASK) - 1) << 4);
                    int len = OffHeapCache.lengthOf(w);
                    mmu.read(e + OffHeapCache.HEADER, buf, 0, len);
                    visitor.visit(mmu.getLong(e + 8), buf, len);
                }
            }
        }
        return n;
    }

    /** Releases the snapshot's address space (its shared tables and the pages only it still holds). Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            mmu.close();
        } finally {
            space.close();
        }
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("snapshot closed");
        }
    }
}
