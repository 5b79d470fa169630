package dev.offmm.examples;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.Mmu;
import dev.offmm.core.VmConfig;
import dev.offmm.examples.cache.CacheBench;
import dev.offmm.examples.cache.CacheStats;
import dev.offmm.examples.cache.OffHeapCache;
import dev.offmm.offheap.PhysicalMemory;

import java.util.Arrays;
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
     * {@code arena}, {@code arena-rss [totalMiB] [blockKiB] [cycles] [reportMs]}, {@code cache [threads]
     * [seconds]}, {@code cache-bench [options]} (see its {@code --help}) or {@code snapshot [threads]
     * [seconds]}. A bad argument is one line on stderr and exit status 2.
     */
    public static void main(String[] args) throws InterruptedException {
        String which = args.length > 0 ? args[0] : "arena";
        String[] rest = Arrays.copyOfRange(args, Math.min(1, args.length), args.length);
        switch (which) {
            case "cache-bench" -> CacheBench.main(rest);
            case "arena-rss" -> dev.offmm.examples.arena.ArenaRssBench.main(rest);
            case "cache" -> {
                int threads = (int) number(which, rest, 0, "threads", 4, 1, 256);
                cache(threads, number(which, rest, 1, "seconds", 1.0, 0.001, 3600));
            }
            case "arena", "snapshot" -> {
                int threads = (int) number(which, rest, 0, "threads", 2, 1, 256);
                double seconds = number(which, rest, 1, "seconds", 2.0, 0.001, 3600);
                try (PhysicalMemory memory = PhysicalMemory.create(256L << 20);
                     AddressSpace as = AddressSpace.create(memory, VmConfig.defaults())) {
                    if (which.equals("arena")) {
                        arena(as);
                    } else {
                        SnapshotExample.run(as, threads, seconds, 1L << 20);
                    }
                }
            }
            default -> usage("'" + which + "': no such example (expected arena, arena-rss, cache, cache-bench or snapshot)");
        }
    }

    /** The {@code i}-th argument of {@code example} as a number in {@code [min, max]}, or {@code dflt}. */
    private static double number(String example, String[] args, int i, String name, double dflt, double min, double max) {
        if (args.length > 2) {
            usage(example + ": unexpected argument '" + args[2] + "' (expected [threads] [seconds])");
        }
        if (args.length <= i) {
            return dflt;
        }
        double v;
        try {
            v = Double.parseDouble(args[i]);
        } catch (NumberFormatException e) {
            v = Double.NaN;
        }
        if (!(v >= min && v <= max) || (name.equals("threads") && v != Math.rint(v))) {
            usage(example + ": invalid " + name + " '" + args[i] + "' (expected "
                    + (name.equals("threads") ? "an integer" : "a number") + " from " + fmt(min) + " to " + fmt(max) + ")");
        }
        return v;
    }

    private static String fmt(double v) {
        return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v);
    }

    private static void usage(String message) {
        System.err.println("offmm example " + message);
        System.exit(2);
    }

    static void arena(AddressSpace as) {
        try (Mmu mmu = as.attach(); dev.offmm.examples.arena.ReserveCommitArena arena
                     = new dev.offmm.examples.arena.ReserveCommitArena(as, 1L << 30, 1L << 20)) {
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
