package dev.offmm.examples.cache;

import dev.offmm.core.Mmu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** OffHeapCache: map semantics, eviction under the budget, no wrong value under concurrency, input checks. */
@Timeout(120) // a deadlock between puts and eviction fails the test instead of hanging the build
class OffHeapCacheTest {
    @Test
    void shouldBehaveLikeAHashMapWhileNothingIsEvicted() {
        Map<Long, byte[]> model = new HashMap<>();
        SplittableRandom rnd = new SplittableRandom(42);
        try (OffHeapCache cache = OffHeapCache.builder().budgetBytes(64L << 20).expectedEntries(20_000)
                .maxValueBytes(5000).build()) {
            byte[] dst = new byte[5000];
            for (int op = 0; op < 30_000; op++) {
                long key = rnd.nextLong(2000) - 1000;
                int what = rnd.nextInt(10);
                if (what < 4) {
                    byte[] v = new byte[rnd.nextInt(0, 5001)];
                    rnd.nextBytes(v);
                    cache.put(key, v);
                    model.put(key, v);
                } else if (what < 5) {
                    assertEquals(model.remove(key) != null, cache.remove(key), "remove " + key);
                } else {
                    byte[] want = model.get(key);
                    int n = cache.get(key, dst);
                    if (want == null) {
                        assertEquals(-1, n, "get of absent " + key);
                    } else {
                        assertEquals(want.length, n, "length of " + key);
                        assertArrayEquals(want, Arrays.copyOf(dst, n), "value of " + key);
                        assertArrayEquals(want, cache.get(key));
                    }
                }
            }
            CacheStats s = cache.stats();
            assertEquals(0, s.evictionCount() + s.collisionEvictionCount(), s.toString());
            assertEquals(model.size(), s.entryCount(), s.toString());
            assertEquals(model.values().stream().mapToLong(v -> v.length).sum(), s.liveBytes(), s.toString());
            assertTrue(s.hitCount() > 0 && s.missCount() > 0, s.toString());
        }
    }

    @Test
    void shouldKeepWithinTheBudgetAndGiveEvictedPagesBack() {
        long budget = 4L << 20;
        try (OffHeapCache cache = OffHeapCache.builder().budgetBytes(budget).expectedEntries(100_000)
                .maxValueBytes(2000).chunkBytes(64 << 10).build()) {
            SplittableRandom rnd = new SplittableRandom(1);
            byte[] v = new byte[2000];
            long written = 0;
            for (long key = 0; written < 10 * budget; key++) {
                int len = rnd.nextInt(100, 2001);
                cache.put(key, v, 0, len);
                written += len;
                if ((key & 255) == 0) {
                    assertTrue(cache.stats().slabBytes() <= budget, cache.stats().toString());
                }
            }
            CacheStats full = cache.stats();
            assertTrue(full.evictionCount() > 0 && full.chunkEvictionCount() > 0 && full.chunkRecycleCount() > 0,
                    full.toString());
            assertTrue(full.rssBytes() <= budget + full.indexBytes(), "rss within the budget plus index: " + full);
            assertTrue(full.rssBytes() >= budget / 2, full.toString());
            assertTrue(full.liveBytes() <= budget, full.toString());
            cache.trimTo(0);
            CacheStats trimmed = cache.stats();
            // Only the open chunks (one per size class used) and the index stay resident: RSS falls
            // by every byte of the chunks evicted.
            assertTrue(trimmed.slabBytes() < full.slabBytes() / 2, trimmed.toString());
            assertTrue(full.rssBytes() - trimmed.rssBytes() >= full.slabBytes() - trimmed.slabBytes(),
                    "rss falls: " + full + " -> " + trimmed);
            assertTrue(trimmed.entryCount() < full.entryCount(), trimmed.toString());
        }
    }

    @Test
    void shouldClearEveryOldHeaderOfARecycledChunkBeforeItsNextUse() {
        // Forbidden: a stamp or key of a chunk's previous use still in place once the chunk is handed
        // to a put: a reader that read it before the recycling would take the next use's bytes for the
        // old entry's (see OffHeapCache). One size class, never read: CLOCK evicts in order, no compaction.
        byte[] v = new byte[1000];
        try (OffHeapCache cache = OffHeapCache.builder().budgetBytes(4L << 20).expectedEntries(10_000)
                .maxValueBytes(2000).chunkBytes(64 << 10).build()) {
            Mmu mmu = cache.session().mmu;
            Map<Long, Long> stampAt = new HashMap<>();
            int recycledChecked = 0;
            int oldEntriesChecked = 0;
            for (long key = 0; recycledChecked < 5; key++) {
                long recycled = cache.stats().chunkRecycleCount();
                cache.put(key, v);
                long e = cache.entryOfForTesting(key);
                assertTrue(e > 0, "key " + key + " is in the index");
                if (cache.stats().chunkRecycleCount() > recycled) {
                    // This put took the recycled chunk and wrote its first entry, at the chunk's start.
                    for (Map.Entry<Long, Long> old : stampAt.entrySet()) {
                        long a = old.getKey();
                        if (a > e && a < e + cache.chunkBytes()) {
                            assertEquals(0, mmu.getLong(a), "stamp " + old.getValue() + " of the entry at 0x"
                                    + Long.toHexString(a) + " survived its chunk's recycling");
                            // And the key: a reader whose "stamp" is a later use's value bytes must not
                            // find the old key after them, as it could not in a dropped page's zeros.
                            assertEquals(0, mmu.getLong(a + 8), "key of the entry at 0x" + Long.toHexString(a)
                                    + " survived its chunk's recycling");
                            oldEntriesChecked++;
                        }
                    }
                    recycledChecked++;
                }
                stampAt.put(e, mmu.getLong(e));
            }
            assertTrue(oldEntriesChecked > 4 * 50, "old entries checked: " + oldEntriesChecked);
            CacheStats s = cache.stats();
            assertTrue(s.rssBytes() <= s.budgetBytes() + s.indexBytes(), s.toString());
        }
    }

    @Test
    void shouldRejectAStaleReadAcrossTwoReusesOfAChunk() {
        // The loads of one get, made by hand where a descheduled reader could make them: it copies
        // key K's slot word w, then the chunk is recycled into a class whose entry X ends its value
        // 8 bytes after K's entry start e (so e holds X's value bytes and e+8 X's unwritten slack),
        // the reader reads "stamp", key, value and "stamp" again, then the chunk is reused for K's
        // class and K is put again at e, republishing w. Forbidden: the reader accepts. With the
        // old key left at e+8 it did (224 of 256 bytes foreign); zeroed pages and zeroed headers do not.
        long chunk = 64 << 10;
        int[] strides = Slabs.strides(OffHeapCache.HEADER + 2000);
        int sk = 0;
        int sx = 0;
        long offK = 0;
        search:
        for (int a : strides) {
            for (int b : strides) {
                for (long end = 2L * b - 8; a >= Slabs.RECYCLE_MIN_STRIDE && b != a && end < chunk / 2; end += b) {
                    if ((end - 8) % a == 0 && (end - 8) / a >= 2) {
                        sk = a;
                        sx = b;
                        offK = end - 8;
                        break search;
                    }
                }
            }
        }
        assertTrue(sk > 0, "two classes with the layout the interleaving needs");
        int lenK = sk - OffHeapCache.HEADER;
        int lenX = sx - OffHeapCache.HEADER - 8;
        long key = 0x4B4B4B4BL;
        try (OffHeapCache cache = OffHeapCache.builder().budgetBytes(4L << 20).expectedEntries(100_000)
                .maxValueBytes(2000).chunkBytes(chunk).build()) {
            OffHeapCache.Session s = cache.session();
            Mmu mmu = s.mmu;
            Slabs slabs = cache.slabsForTesting();
            long b = cache.bucketForTesting(key);
            long[] next = {1_000_000};
            java.util.function.IntToLongFunction filler = len -> {
                long k;
                do {
                    k = next[0]++;
                } while (cache.bucketForTesting(k) == b);     // K's bucket stays K's alone
                byte[] v = new byte[len];
                Arrays.fill(v, (byte) 0x5A);    // nonzero: X's value bytes pass for a stamp
                s.put(k, v);
                return cache.entryOfForTesting(k);
            };
            java.util.function.LongToIntFunction offset = at -> (int) ((at - slabs.base) & (chunk - 1));
            for (int i = 0; i < 3 * 64 * (chunk / sk); i++) {
                filler.applyAsLong(lenK);        // the budget turned over in K's class
            }
            while (offset.applyAsInt(filler.applyAsLong(lenK)) != offK - sk) {
                // up to the entry before K's place
            }
            byte[] valueK = new byte[lenK];
            Arrays.fill(valueK, (byte) 'K');
            s.put(key, valueK);
            long e = cache.entryOfForTesting(key);
            int c = slabs.chunkOf(e);
            long w = 0;
            int slot = -1;
            for (int i = 0; i < OffHeapCache.SLOTS; i++) {
                if (mmu.getLong(b + 8L * i) != 0) {
                    slot = i;
                    w = mmu.getLong(b + 8L * i);
                }
            }
            while (slabs.chunkOf(filler.applyAsLong(lenK)) == c) {
                // K's chunk full, so that it can be evicted
            }
            // The reader has w. The chunk is reused, filled, for X's class.
            boolean reused = false;
            for (int i = 0; i < 10 * 64 * (chunk / sx); i++) {
                int at = slabs.chunkOf(filler.applyAsLong(lenX));
                if (reused && at != c) {
                    break;
                }
                reused |= at == c;
            }
            assertTrue(reused, "the chunk was reused for the other class");
            long stamp = mmu.getLongAcquire(e);
            boolean same = mmu.getLong(e + 8) == key;
            byte[] dst = new byte[lenK];
            mmu.read(e + OffHeapCache.HEADER, dst, 0, lenK);
            VarHandle.loadLoadFence();
            long stampAgain = mmu.getLong(e);
            // The chunk is reused for K's class again and K put back at e.
            for (int i = 0; offset.applyAsInt(filler.applyAsLong(lenK)) != offK - sk
                    || slabs.chunkOf(cache.entryOfForTesting(next[0] - 1)) != c; i++) {
                assertTrue(i < 20 * 64 * (chunk / sk), "the chunk was reused for K's class");
            }
            s.put(key, valueK);
            assertEquals(e, cache.entryOfForTesting(key), "K is back at its old address");
            assertEquals(w, mmu.getLong(b + 8L * slot), "its slot word is republished unchanged");
            boolean accepted = stamp != 0 && stamp == stampAgain && same;
            assertTrue(!accepted || Arrays.equals(dst, valueK), "the reader accepted bytes no put wrote for K: "
                    + Arrays.toString(Arrays.copyOf(dst, 32)));
        }
    }

    @Test
    void shouldNeverReturnAValueThatWasNotPutForTheKey() throws InterruptedException {
        // Values describe themselves: key, version, length, then bytes derived from all three and a
        // checksum. Forbidden: a get whose bytes are not exactly some put's value for that key.
        int keys = 2000;
        try (OffHeapCache cache = OffHeapCache.builder().budgetBytes(4L << 20).expectedEntries(keys)
                .maxValueBytes(3000).chunkBytes(64 << 10).build()) {
            AtomicBoolean stop = new AtomicBoolean();
            AtomicReference<String> bad = new AtomicReference<>();
            AtomicLong hits = new AtomicLong();
            Thread[] ts = new Thread[3];
            for (int t = 0; t < ts.length; t++) {
                int id = t;
                ts[t] = new Thread(() -> {
                    SplittableRandom rnd = new SplittableRandom(id);
                    byte[] v = new byte[3000];
                    byte[] dst = new byte[3000];
                    long version = 0;
                    try (OffHeapCache.Session s = cache.session()) {
                        while (!stop.get() && bad.get() == null) {
                            long key = rnd.nextLong(keys);
                            int what = rnd.nextInt(10);
                            if (what < 3) {
                                int len = rnd.nextInt(32, 3001);
                                fill(v, key, (long) id << 48 | ++version, len);
                                s.put(key, v, 0, len);
                            } else if (what == 3) {
                                s.remove(key);
                            } else {
                                int n = s.get(key, dst);
                                if (n >= 0) {
                                    hits.incrementAndGet();
                                    String why = check(dst, n, key);
                                    if (why != null) {
                                        bad.compareAndSet(null, why);
                                    }
                                }
                            }
                        }
                    }
                });
                ts[t].start();
            }
            Thread.sleep(2500);
            stop.set(true);
            for (Thread t : ts) {
                t.join();
            }
            assertNull(bad.get());
            CacheStats s = cache.stats();
            // Chunks were evicted, compacted (moved entries) and recycled while readers ran.
            assertTrue(hits.get() > 1000 && s.chunkEvictionCount() > 0 && s.movedCount() > 0
                    && s.chunkRecycleCount() > 0, s.toString());
        }
    }

    @Test
    void shouldKeepASnapshotAsItWasWhileTheCacheChanges() {
        Map<Long, byte[]> model = new HashMap<>();
        SplittableRandom rnd = new SplittableRandom(7);
        try (OffHeapCache cache = OffHeapCache.builder().budgetBytes(64L << 20).expectedEntries(20_000)
                .maxValueBytes(3000).build()) {
            for (long key = 0; key < 5000; key++) {
                byte[] v = new byte[rnd.nextInt(0, 3001)];
                rnd.nextBytes(v);
                cache.put(key, v);
                model.put(key, v);
            }
            byte[] dst = new byte[3000];
            try (CacheSnapshot snap = cache.snapshot()) {
                // The live cache moves on: every key replaced, half removed, new keys added.
                for (long key = 0; key < 5000; key++) {
                    if (key % 2 == 0) {
                        cache.remove(key);
                    } else {
                        cache.put(key, new byte[] {1, 2, 3});
                    }
                    cache.put(key + 100_000, new byte[] {4});
                }
                for (long key = 0; key < 5000; key++) {
                    byte[] want = model.get(key);
                    int n = snap.get(key, dst);
                    assertEquals(want.length, n, "length of " + key);
                    assertArrayEquals(want, Arrays.copyOf(dst, n), "value of " + key);
                    assertEquals(-1, snap.get(key + 100_000, dst), "a key put after the snapshot");
                }
                AtomicLong bytes = new AtomicLong();
                long entries = snap.forEach((key, value, length) -> {
                    assertArrayEquals(model.get(key), Arrays.copyOf(value, length), "visited " + key);
                    bytes.addAndGet(length);
                });
                assertEquals(model.size(), entries);
                assertEquals(model.values().stream().mapToLong(v -> v.length).sum(), bytes.get());
                // And the live cache shows none of the snapshot's past.
                assertEquals(-1, cache.get(0, dst));
                assertEquals(3, cache.get(1, dst));
            }
            assertThrows(IllegalArgumentException.class, () -> {
                try (CacheSnapshot snap = cache.snapshot()) {
                    snap.get(1, null);
                }
            });
        }
    }

    @Test
    void shouldTakeSnapshotsOfWholeValuesWhileWritersRun() throws InterruptedException {
        // Forbidden: a snapshot entry that is not exactly some put's value for its key.
        int keys = 2000;
        try (OffHeapCache cache = OffHeapCache.builder().budgetBytes(4L << 20).expectedEntries(keys)
                .maxValueBytes(3000).chunkBytes(64 << 10).build()) {
            AtomicBoolean stop = new AtomicBoolean();
            Thread writer = new Thread(() -> {
                SplittableRandom rnd = new SplittableRandom(3);
                byte[] v = new byte[3000];
                long version = 0;
                try (OffHeapCache.Session s = cache.session()) {
                    while (!stop.get()) {
                        long key = rnd.nextLong(keys);
                        int len = rnd.nextInt(32, 3001);
                        fill(v, key, ++version, len);
                        s.put(key, v, 0, len);
                    }
                }
            });
            writer.start();
            try {
                long seen = 0;
                for (int i = 0; i < 20; i++) {
                    try (CacheSnapshot snap = cache.snapshot()) {
                        AtomicReference<String> bad = new AtomicReference<>();
                        seen += snap.forEach((key, value, length) -> {
                            String why = check(value, length, key);
                            if (why != null) {
                                bad.compareAndSet(null, why);
                            }
                        });
                        assertNull(bad.get());
                    }
                }
                assertTrue(seen > 0, "snapshots saw no entries");
            } finally {
                stop.set(true);
                writer.join();
            }
        }
    }

    static void fill(byte[] v, long key, long version, int len) {
        ByteBuffer b = ByteBuffer.wrap(v);
        b.putLong(0, key).putLong(8, version).putInt(16, len);
        long sum = key * 31 + version;
        for (int i = 28; i < len; i++) {
            v[i] = (byte) (sum * i >>> 7);
        }
        b.putInt(24, checksum(v, len));
    }

    static String check(byte[] v, int n, long key) {
        if (n < 28) {
            return "length " + n + " of key " + key;
        }
        ByteBuffer b = ByteBuffer.wrap(v);
        long k = b.getLong(0);
        long version = b.getLong(8);
        int len = b.getInt(16);
        if (k != key || len != n || b.getInt(24) != checksum(v, n)) {
            return "key " + key + ": got key " + k + " version " + version + " length " + len + "/" + n;
        }
        long sum = key * 31 + version;
        for (int i = 28; i < n; i++) {
            if (v[i] != (byte) (sum * i >>> 7)) {
                return "key " + key + " version " + version + ": byte " + i;
            }
        }
        return null;
    }

    private static int checksum(byte[] v, int len) {
        int h = 1;
        for (int i = 0; i < len; i++) {
            if (i < 24 || i >= 28) {
                h = h * 31 + v[i];
            }
        }
        return h;
    }

    @Test
    @Timeout(60)
    void shouldReportACorruptIndexInsteadOfRetryingForEver() {
        try (OffHeapCache cache = OffHeapCache.builder().maxValueBytes(100).build()) {
            for (long k = 1; k <= 100; k++) {
                cache.put(k, new byte[] {(byte) k});
            }
            assertEquals(1, cache.get(7, new byte[1]));
            cache.dropSlabsBehindTheIndexForTesting();
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> cache.get(7, new byte[1]));
            assertTrue(e.getMessage().contains("corrupt"), e.getMessage());
            assertEquals(-1, cache.get(1_000_000, new byte[1]), "a key the index does not name is still a miss");
        }
    }

    @Test
    void shouldAnswerBadInputWithIllegalArgumentException() {
        assertThrows(IllegalArgumentException.class, () -> OffHeapCache.builder().budgetBytes(-1));
        assertThrows(IllegalArgumentException.class, () -> OffHeapCache.builder().expectedEntries(0));
        assertThrows(IllegalArgumentException.class, () -> OffHeapCache.builder().maxValueBytes(-5));
        assertThrows(IllegalArgumentException.class, () -> OffHeapCache.builder().maxValueBytes(1 << 20));
        assertThrows(IllegalArgumentException.class, () -> OffHeapCache.builder().chunkBytes(-1));
        assertThrows(IllegalArgumentException.class, () -> OffHeapCache.builder().budgetBytes(1 << 16).build());
        assertThrows(IllegalArgumentException.class, () -> OffHeapCache.builder().chunkBytes(3000).build());
        try (OffHeapCache cache = OffHeapCache.builder().maxValueBytes(100).build()) {
            byte[] v = new byte[101];
            assertThrows(IllegalArgumentException.class, () -> cache.put(1, null));
            assertThrows(IllegalArgumentException.class, () -> cache.put(1, v));
            assertThrows(IllegalArgumentException.class, () -> cache.get(1, null));
            assertThrows(IllegalArgumentException.class, () -> cache.trimTo(-1));
            try (OffHeapCache.Session s = cache.session()) {
                assertThrows(IllegalArgumentException.class, () -> s.put(1, v, -1, 10));
                assertThrows(IllegalArgumentException.class, () -> s.put(1, v, 0, -1));
                assertThrows(IllegalArgumentException.class, () -> s.put(1, v, 90, 20));
                s.put(1, v, 1, 100);
                assertEquals(100, s.get(1, new byte[0]), "a short buffer gets the length");
            }
            assertEquals(0, cache.stats().collisionEvictionCount());
        }
    }
}
