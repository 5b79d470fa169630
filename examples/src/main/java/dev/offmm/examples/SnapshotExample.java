package dev.offmm.examples;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Mmu;
import dev.offmm.core.Prot;
import dev.offmm.core.VmStats;

import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A consistent snapshot of a live concurrent store through {@link AddressSpace#fork()}, the way
 * Redis takes one with {@code fork()}: writers keep updating 64-byte records while a snapshot
 * thread forks the space, checksums every record of the child, and closes it. Only pages the
 * writers touch during the scan are copied (copy-on-write); the page tables are shared until then.
 *
 * <p>A record is {@code version, key, value, checksum}, written under a per-record sequence lock
 * (odd version while a writer is inside). The fork is a single point in time for the whole store,
 * so in the child every record is either complete, with a matching checksum, or caught mid-write
 * (odd version), which a reader of the snapshot can tell and skip; a torn record with an even
 * version would be a broken snapshot, and the example fails if it finds one.
 */
public final class SnapshotExample {
    private static final long RECORD = 64;

    private SnapshotExample() {
    }

    private static long checksum(long key, long value, long version) {
        long h = key * 0x9E3779B97F4A7C15L ^ value * 0xBF58476D1CE4E5B9L ^ version;
        return h ^ (h >>> 31);
    }

    /** Runs {@code threads} writers over {@code records} records for {@code seconds}, snapshotting all the while. */
    static void run(AddressSpace as, int threads, double seconds, long records) throws InterruptedException {
        long base = as.mmap(0, records * RECORD, Prot.READ | Prot.WRITE, MapFlags.NONE);
        try (Mmu mmu = as.attach()) {
            for (long r = 0; r < records; r++) {
                long a = base + r * RECORD;
                mmu.putLong(a + 8, r);
                mmu.putLong(a + 24, checksum(r, 0, 0));
            }
        }
        AtomicBoolean stop = new AtomicBoolean();
        AtomicLong updates = new AtomicLong();
        Thread[] writers = new Thread[threads];
        for (int t = 0; t < threads; t++) {
            long seed = t;
            writers[t] = new Thread(() -> write(as, base, records, seed, stop, updates), "writer-" + t);
            writers[t].start();
        }
        long deadline = System.nanoTime() + (long) (seconds * 1e9);
        int n = 0;
        System.out.printf("%d writers over %d records (%d MiB); snapshots until %.1f s have passed%n", threads, records,
                records * RECORD >> 20, seconds);
        try {
            do {
                snapshot(as, base, records, ++n);
            } while (System.nanoTime() < deadline);
        } finally {
            stop.set(true);
            for (Thread w : writers) {
                w.join();
            }
        }
        System.out.printf("%d snapshots, %d updates meanwhile; parent rss=%d pages%n", n, updates.get(),
                as.stats().rssPages());
        as.munmap(base, records * RECORD);
    }

    private static void write(AddressSpace as, long base, long records, long seed, AtomicBoolean stop, AtomicLong updates) {
        SplittableRandom rnd = new SplittableRandom(seed);
        long done = 0;
        try (Mmu mmu = as.attach()) {
            while (!stop.get()) {
                long a = base + rnd.nextLong(records) * RECORD;
                // The per-record sequence lock: odd while inside, CAS so two writers never mix.
                long v = mmu.getLongAcquire(a);
                if ((v & 1) != 0 || !mmu.compareAndSetLong(a, v, v + 1)) {
                    continue;
                }
                long value = rnd.nextLong();
                mmu.putLong(a + 16, value);
                mmu.putLong(a + 24, checksum(mmu.getLong(a + 8), value, v + 2));
                mmu.putLongRelease(a, v + 2);
                done++;
            }
        }
        updates.addAndGet(done);
    }

    private static void snapshot(AddressSpace as, long base, long records, int n) {
        long cowBefore = as.stats().faults("cowCopy");
        long t0 = System.nanoTime();
        AddressSpace child = as.fork();
        long forkMicros = (System.nanoTime() - t0) / 1000;
        long complete = 0;
        long inFlight = 0;
        long sum = 0;
        long t1 = System.nanoTime();
        try (Mmu mmu = child.attach()) {
            for (long r = 0; r < records; r++) {
                long a = base + r * RECORD;
                long v = mmu.getLong(a);
                if ((v & 1) != 0) {
                    inFlight++;
                    continue;
                }
                long key = mmu.getLong(a + 8);
                long value = mmu.getLong(a + 16);
                if (key != r || mmu.getLong(a + 24) != checksum(key, value, v)) {
                    throw new IllegalStateException("snapshot " + n + ": record " + r + " is torn (version " + v + ")");
                }
                complete++;
                sum += value;
            }
        }
        long scanMillis = (System.nanoTime() - t1) / 1_000_000;
        VmStats cs = child.stats();
        VmStats ps = as.stats();
        System.out.printf("snapshot %d: fork %d us, %d records complete + %d mid-write, checksum %016x, scan %d ms;"
                        + " pages copied by the writers meanwhile %d; rss parent %d / child %d pages; shared tables %d%n",
                n, forkMicros, complete, inFlight, sum, scanMillis, ps.faults("cowCopy") - cowBefore, ps.rssPages(),
                cs.rssPages(), cs.sharedTables());
        child.close();
    }
}
