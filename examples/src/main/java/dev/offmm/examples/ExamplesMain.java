package dev.offmm.examples;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.Mmu;
import dev.offmm.core.VmConfig;
import dev.offmm.examples.cache.CacheBench;
import dev.offmm.examples.cache.CacheStats;
import dev.offmm.examples.cache.OffHeapCache;
import dev.offmm.offheap.PhysicalMemory;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Runs the examples: {@code arena} (reserve and commit), {@code cache} (the off-heap cache,
 * {@link OffHeapCache}, under a byte budget), {@code cache-bench} (that cache against
 * ConcurrentHashMap and Caffeine, {@link CacheBench}) and {@code snapshot} (consistent snapshots
 * of a live store through fork), printing what happened to resident memory.
 */
public final class ExamplesMain {
    private ExamplesMain() {
    }

    /**
     * {@code arena}, {@code cache [threads] [seconds]}, {@code cache-bench [options]} (see its
     * {@code --help}) or {@code snapshot [threads] [seconds]}.
     */
    public static void main(String[] args) throws InterruptedException {
        String which = args.length > 0 ? args[0] : "arena";
        if (which.equals("cache-bench")) {
            CacheBench.main(java.util.Arrays.copyOfRange(args, 1, args.length));
            return;
        }
        if (which.equals("cache")) {
            cache(args.length > 1 ? Integer.parseInt(args[1]) : 4,
                    args.length > 2 ? Double.parseDouble(args[2]) : 1.0);
            return;
        }
        try (PhysicalMemory memory = PhysicalMemory.create(256L << 20);
             AddressSpace as = AddressSpace.create(memory, VmConfig.defaults())) {
            switch (which) {
                case "arena" -> arena(as);
                case "snapshot" -> SnapshotExample.run(as, args.length > 1 ? Integer.parseInt(args[1]) : 2,
                        args.length > 2 ? Double.parseDouble(args[2]) : 2.0, 1L << 20);
                default -> throw new IllegalArgumentException("example=" + which
                        + " (expected arena, cache, cache-bench or snapshot)");
            }
        }
    }

    static void arena(AddressSpace as) {
        try (Mmu mmu = as.attach(); ReserveCommitArena arena = new ReserveCommitArena(as, 1L << 30, 1L << 20)) {
            System.out.printf("reserved 1 GiB: rss=%d pages, tables=%d bytes%n",
                    as.stats().rssPages(), as.stats().pageTableBytes());
            long sum = 0;
            for (int i = 0; i < 10_000; i++) {
                long a = arena.allocate(1000, 8);
                mmu.putLong(a, i);
                sum += mmu.getLong(a);
            }
            System.out.printf("10000 objects: committed=%d KiB, rss=%d pages, checksum=%d%n",
                    arena.committed() >> 10, as.stats().rssPages(), sum);
            arena.reset();
            System.out.printf("after reset: committed=%d, rss=%d pages%n", arena.committed(), as.stats().rssPages());
        }
    }

    /**
     * {@code threads} threads put and get self-describing values of 64 to 4096 bytes under 50,000
     * keys in an {@link OffHeapCache} whose budget holds about half of them, then print its stats.
     *
     * @throws IllegalStateException if a get returned bytes that no put stored for its key
     */
    static CacheStats cache(int threads, double seconds) throws InterruptedException {
        int keys = 50_000;
        try (OffHeapCache cache = OffHeapCache.builder().budgetBytes(64L << 20).expectedEntries(keys)
                .maxValueBytes(4096).build()) {
            AtomicLong torn = new AtomicLong();
            long deadline = System.nanoTime() + (long) (seconds * 1e9);
            Thread[] ts = new Thread[threads];
            for (int t = 0; t < threads; t++) {
                long seed = t;
                ts[t] = new Thread(() -> {
                    java.util.SplittableRandom rnd = new java.util.SplittableRandom(seed);
                    byte[] value = new byte[4096];
                    byte[] read = new byte[4096];
                    try (OffHeapCache.Session s = cache.session()) {
                        while (System.nanoTime() < deadline) {
                            long key = rnd.nextLong(keys);
                            int n = s.get(key, read);
                            if (n < 0) {
                                int len = rnd.nextInt(64, 4097);
                                java.util.Arrays.fill(value, 0, len, (byte) (key ^ len));
                                s.put(key, value, 0, len);
                            } else {
                                for (int i = 0; i < n; i++) {
                                    if (read[i] != (byte) (key ^ n)) {
                                        torn.incrementAndGet();
                                        break;
                                    }
                                }
                            }
                        }
                    }
                });
                ts[t].start();
            }
            for (Thread t : ts) {
                t.join();
            }
            CacheStats stats = cache.stats();
            System.out.printf("%d threads, %d keys, 64 MiB budget: %d wrong values%n  %s%n", threads, keys, torn.get(), stats);
            if (torn.get() != 0) {
                throw new IllegalStateException(torn.get() + " wrong values");
            }
            return stats;
        }
    }
}
