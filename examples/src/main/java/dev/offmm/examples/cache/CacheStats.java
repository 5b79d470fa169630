package dev.offmm.examples.cache;

/**
 * A snapshot of an {@link OffHeapCache}'s counters, like Caffeine's {@code CacheStats}: counts
 * since construction plus the memory the cache holds now. Counters are summed over per-thread
 * cells without a lock, so a snapshot taken while threads run is approximate (each counter is
 * exact by itself, they are not taken at one instant).
 *
 * @param hitCount gets that found their key
 * @param missCount gets that did not
 * @param putCount puts (inserts and replacements)
 * @param removeCount removes that found their key
 * @param evictionCount entries dropped to stay within the budget (whole slab chunks)
 * @param collisionEvictionCount entries dropped because their index bucket was full
 * @param chunkEvictionCount slab chunks evicted: given back with {@code DONTNEED}, or recycled
 * @param entryCount entries live now
 * @param liveBytes value bytes of the live entries
 * @param slabBytes bytes of the slab chunks in use (what the budget limits)
 * @param budgetBytes the byte budget
 * @param indexBytes bytes of the off-heap index (fixed at construction)
 * @param rssBytes resident bytes of the cache's address space (index and slabs)
 * @param pageTableBytes bytes of the address space's page tables
 * @param movedCount live entries copied forward out of chunks compacted by eviction
 * @param chunkRecycleCount of the chunks evicted, those handed to the put that needed one with their
 *     pages still resident (at the budget: no fault and no zeroing of the chunk, only of its headers)
 */
public record CacheStats(long hitCount, long missCount, long putCount, long removeCount, long evictionCount,
                         long collisionEvictionCount, long chunkEvictionCount, long entryCount, long liveBytes,
                         long slabBytes, long budgetBytes, long indexBytes, long rssBytes, long pageTableBytes,
                         long movedCount, long chunkRecycleCount) {
    /** Gets, hits and misses. */
    public long requestCount() {
        return hitCount + missCount;
    }

    /** Hits over requests, or 1 if there were none (as in Caffeine). */
    public double hitRate() {
        long r = requestCount();
        return r == 0 ? 1.0 : (double) hitCount / r;
    }

    @Override
    public String toString() {
        return "CacheStats{hitCount=" + hitCount + ", missCount=" + missCount
                + ", hitRate=" + String.format("%.4f", hitRate()) + ", putCount=" + putCount
                + ", removeCount=" + removeCount + ", evictionCount=" + evictionCount
                + ", collisionEvictionCount=" + collisionEvictionCount + ", chunkEvictionCount=" + chunkEvictionCount
                + ", entryCount=" + entryCount + ", liveBytes=" + liveBytes + ", slabBytes=" + slabBytes
                + ", budgetBytes=" + budgetBytes + ", indexBytes=" + indexBytes + ", rssBytes=" + rssBytes
                + ", pageTableBytes=" + pageTableBytes + ", movedCount=" + movedCount
                + ", chunkRecycleCount=" + chunkRecycleCount + '}';
    }
}
