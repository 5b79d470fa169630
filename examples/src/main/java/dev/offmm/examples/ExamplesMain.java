package dev.offmm.examples;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.Mmu;
import dev.offmm.core.VmConfig;
import dev.offmm.offheap.PhysicalMemory;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Runs the examples: {@code arena} (reserve and commit), {@code cache} (a concurrent page
 * cache with eviction), printing what happened to resident memory, and {@code snapshot}
 * (consistent snapshots of a live store through fork).
 */
public final class ExamplesMain {
    private ExamplesMain() {
    }

    /** {@code arena}, {@code cache [threads] [seconds]} or {@code snapshot [threads] [seconds]}. */
    public static void main(String[] args) throws InterruptedException {
        String which = args.length > 0 ? args[0] : "arena";
        try (PhysicalMemory memory = PhysicalMemory.create(256L << 20);
             AddressSpace as = AddressSpace.create(memory, VmConfig.defaults())) {
            switch (which) {
                case "arena" -> arena(as);
                case "cache" -> cache(as, args.length > 1 ? Integer.parseInt(args[1]) : 4,
                        args.length > 2 ? Double.parseDouble(args[2]) : 1.0);
                case "snapshot" -> SnapshotExample.run(as, args.length > 1 ? Integer.parseInt(args[1]) : 2,
                        args.length > 2 ? Double.parseDouble(args[2]) : 2.0, 1L << 20);
                default -> throw new IllegalArgumentException("example=" + which + " (expected arena, cache or snapshot)");
            }
        }
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

    static void cache(AddressSpace as, int threads, double seconds) throws InterruptedException {
        long slots = 16_384;
        try (ConcurrentPageCache cache = new ConcurrentPageCache(as, slots)) {
            AtomicLong hits = new AtomicLong();
            AtomicLong misses = new AtomicLong();
            AtomicLong torn = new AtomicLong();
            long deadline = System.nanoTime() + (long) (seconds * 1e9);
            Thread[] ts = new Thread[threads];
            for (int t = 0; t < threads; t++) {
                long seed = t;
                ts[t] = new Thread(() -> {
                    java.util.SplittableRandom rnd = new java.util.SplittableRandom(seed);
                    byte[] value = new byte[64];
                    byte[] read = new byte[64];
                    try (Mmu mmu = as.attach()) {
                        while (System.nanoTime() < deadline) {
                            long key = rnd.nextLong(slots * 2);
                            if (cache.get(mmu, key, read)) {
                                hits.incrementAndGet();
                                for (byte b : read) {
                                    if (b != (byte) key) {
                                        torn.incrementAndGet();
                                        break;
                                    }
                                }
                            } else {
                                misses.incrementAndGet();
                                java.util.Arrays.fill(value, (byte) key);
                                cache.put(mmu, key, value);
                            }
                            if (rnd.nextInt(10_000) == 0) {
                                cache.evict(rnd.nextLong(slots - 256), 256);
                            }
                        }
                    }
                });
                ts[t].start();
            }
            for (Thread t : ts) {
                t.join();
            }
            System.out.printf("%d threads: %d hits, %d misses, %d torn reads, rss=%d pages of %d slots%n",
                    threads, hits.get(), misses.get(), torn.get(), as.stats().rssPages(), slots);
            if (torn.get() != 0) {
                throw new IllegalStateException(torn.get() + " torn reads");
            }
        }
    }
}
