package dev.offmm.examples.cache;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;

import java.util.Arrays;
import java.util.Iterator;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/** The caches {@link CacheBench} compares, behind one small interface, each under the same byte budget. */
final class BenchPeers {
    private BenchPeers() {
    }

    /**
     * A hit delivers the value's bytes to the caller's buffer on every peer, as serving a cached value
     * does (offmm's get can do nothing else): an on-heap peer handing out only its array's reference
     * would skip the reads of the value that offmm pays for.
     */
    static void deliver(byte[] value, byte[] dst) {
        System.arraycopy(value, 0, dst, 0, value.length);
    }

    /** One cache under test. */
    interface Peer extends AutoCloseable {
        /** A worker for the calling thread. */
        Worker worker();

        /** The cache's own idea of its resident bytes, or -1. */
        long ownRssBytes();

        /** Hits over gets, by the cache's own count, or -1. */
        double hitRate();

        /** Bytes of the values held now. */
        long liveBytes();

        @Override
        void close();
    }

    /** One thread's operations. */
    interface Worker extends AutoCloseable {
        /** Whether {@code key} was present (its value read). */
        boolean get(long key);

        /** Stores {@code src[0 .. len)} under {@code key}. */
        void put(long key, byte[] src, int len);

        @Override
        void close();
    }

    /**
     * A peer for {@code entries} keys under {@code budget} bytes; {@code fitting}: about how many
     * entries the budget holds, the size hint of the peers that take one (offmm's index, fixed at
     * construction, and CHM's initial table), as a user would size them: for the entries the
     * cache can hold, not for every key that may come.
     */
    static Peer create(String name, long entries, long fitting, long budget, int maxValue, boolean hostHugePages) {
        return switch (name) {
            case "offmm" -> new OffmmPeer(Math.min(entries, fitting), budget, maxValue, hostHugePages);
            case "chm" -> new ChmPeer(Math.min(entries, fitting), budget);
            case "caffeine" -> new CaffeinePeer(budget);
            default -> throw new IllegalArgumentException("peer=" + name + " (expected offmm, chm or caffeine)");
        };
    }

    /** offmm's {@link OffHeapCache}: budget = slab bytes (headers and size-class slack included). */
    static final class OffmmPeer implements Peer {
        private final OffHeapCache cache;

        OffmmPeer(long entries, long budget, int maxValue, boolean hostHugePages) {
            this.cache = OffHeapCache.builder().budgetBytes(budget).expectedEntries(entries).maxValueBytes(maxValue)
                    .hostHugePages(hostHugePages).build();
        }

        @Override
        public Worker worker() {
            OffHeapCache.Session s = cache.session();
            byte[] dst = new byte[cache.maxValueBytes()];
            return new Worker() {
                @Override
                public boolean get(long key) {
                    return s.get(key, dst) >= 0;
                }

                @Override
                public void put(long key, byte[] src, int len) {
                    s.put(key, src, 0, len);
                }

                @Override
                public void close() {
                    s.close();
                }
            };
        }

        @Override
        public long ownRssBytes() {
            return cache.stats().rssBytes();
        }

        @Override
        public double hitRate() {
            return cache.stats().hitRate();
        }

        @Override
        public long liveBytes() {
            return cache.stats().liveBytes();
        }

        OffHeapCache cache() {
            return cache;
        }

        @Override
        public void close() {
            cache.close();
        }
    }

    /**
     * {@code ConcurrentHashMap<Long, byte[]>} with a byte budget of value lengths: a put that takes
     * the total over the budget evicts, under one lock, the keys a sweeping iterator passes (the
     * map's table order, which is random with respect to use) until it is back under.
     */
    static final class ChmPeer implements Peer {
        private final ConcurrentHashMap<Long, byte[]> map;
        private final long budget;
        private final AtomicLong weight = new AtomicLong();
        private final AtomicLong hits = new AtomicLong();
        private final AtomicLong gets = new AtomicLong();
        private final Object evictLock = new Object();
        private Iterator<Long> sweep;

        ChmPeer(long entries, long budget) {
            this.map = new ConcurrentHashMap<>((int) Math.min(1 << 30, entries));
            this.budget = budget;
        }

        @Override
        public Worker worker() {
            return new Worker() {
                private final byte[] dst = new byte[OffHeapCache.MAX_VALUE_LIMIT];
                private long myHits;
                private long myGets;

                @Override
                public boolean get(long key) {
                    myGets++;
                    byte[] v = map.get(key);
                    if (v != null) {
                        myHits++;
                        deliver(v, dst);
                        return true;
                    }
                    return false;
                }

                @Override
                public void put(long key, byte[] src, int len) {
                    byte[] old = map.put(key, Arrays.copyOf(src, len));
                    if (weight.addAndGet(len - (old == null ? 0 : old.length)) > budget) {
                        evict();
                    }
                }

                @Override
                public void close() {
                    hits.addAndGet(myHits);
                    gets.addAndGet(myGets);
                }
            };
        }

        private void evict() {
            synchronized (evictLock) {
                while (weight.get() > budget) {
                    if (sweep == null || !sweep.hasNext()) {
                        sweep = map.keySet().iterator();
                        if (!sweep.hasNext()) {
                            return;
                        }
                    }
                    Long k = sweep.next();
                    byte[] v = map.remove(k);
                    if (v != null) {
                        weight.addAndGet(-v.length);
                    }
                }
            }
        }

        @Override
        public long ownRssBytes() {
            return -1;
        }

        @Override
        public double hitRate() {
            return gets.get() == 0 ? -1 : (double) hits.get() / gets.get();
        }

        @Override
        public long liveBytes() {
            return weight.get();
        }

        @Override
        public void close() {
            map.clear();
        }
    }

    /** Caffeine with {@code maximumWeight} = the budget and a weigher of value lengths (W-TinyLFU). */
    static final class CaffeinePeer implements Peer {
        private final Cache<Long, byte[]> cache;

        CaffeinePeer(long budget) {
            this.cache = Caffeine.newBuilder().maximumWeight(budget).weigher((Long k, byte[] v) -> v.length)
                    .recordStats().build();
        }

        @Override
        public Worker worker() {
            return new Worker() {
                private final byte[] dst = new byte[OffHeapCache.MAX_VALUE_LIMIT];

                @Override
                public boolean get(long key) {
                    byte[] v = cache.getIfPresent(key);
                    if (v == null) {
                        return false;
                    }
                    deliver(v, dst);
                    return true;
                }

                @Override
                public void put(long key, byte[] src, int len) {
                    cache.put(key, Arrays.copyOf(src, len));
                }

                @Override
                public void close() {
                }
            };
        }

        @Override
        public long ownRssBytes() {
            return -1;
        }

        @Override
        public double hitRate() {
            return cache.stats().hitRate();
        }

        @Override
        public long liveBytes() {
            return cache.policy().eviction().orElseThrow().weightedSize().orElse(-1);
        }

        @Override
        public void close() {
            cache.invalidateAll();
            cache.cleanUp();
        }
    }
}
