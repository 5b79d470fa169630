package dev.offmm.bench.mmu;

import dev.offmm.bench.cli.Ranges;
import dev.offmm.bench.cli.Version;
import picocli.CommandLine.Command;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.TypeConversionException;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;

/**
 * {@code offmm reads}: {@link CacheReadBenchmark}'s 64-byte reads into a {@code byte[]}, offmm
 * against the plain segment, as a ratio that a noisy machine cannot move: the two sides run in
 * alternating slices in one JVM (offmm, plain, then plain, offmm, and so on: neither always goes
 * first), each pair of neighbouring slices gives one ratio, and the median of the pairs is the
 * verdict, with its range. A JMH run measures one side for seconds and then the other, so a change
 * of the machine's phase in between (this VM's plain reads moved by 2x from one run to the next)
 * lands in the ratio; here it lands in both halves of a pair alike.
 *
 * <p>It runs the benchmark's own set-up ({@link CacheReadBenchmark.Memory}, one
 * {@link CacheReadBenchmark.Reader} per thread) and its own methods, so the reads are the same
 * operations as JMH's; with several threads they run the same side at the same time, between
 * barriers. The first pairs warm up the JIT and the caches and are not counted.
 */
@Command(name = "reads", mixinStandardHelpOptions = true, versionProvider = Version.class, sortOptions = false,
        description = "Random 64-byte reads through offmm against a plain segment, in alternating slices: paired ratios.")
public final class ReadRatioHarness implements Callable<Integer> {
    private static final int BATCH = 1024;

    @Option(names = "--sizes", paramLabel = "SIZE", split = ",", converter = Size.class,
            description = "range sizes, e.g. 256k,256m,4g (default ${DEFAULT-VALUE})")
    private long[] sizes = {256L << 10, 256L << 20};

    @Option(names = "--distributions", paramLabel = "D", split = ",",
            description = "address distributions: ${COMPLETION-CANDIDATES} (default ${DEFAULT-VALUE})")
    private Distribution[] distributions = {Distribution.uniform, Distribution.zipf};

    @Option(names = "--thp", description = "map every range of 2 MiB or more with offmm's 2 MiB pages")
    private boolean thp;

    @Option(names = "--host-huge-pages", description = "back offmm's frames and the plain segment with host huge pages")
    private boolean hostHugePages;

    @Option(names = "--threads", paramLabel = "N", converter = Threads.class,
            description = "reader threads, 1..64, each with its own Mmu and addresses (default ${DEFAULT-VALUE})")
    private int threads = 1;

    @Option(names = "--pairs", paramLabel = "N", converter = Pairs.class,
            description = "measured pairs of slices per case, 1..10000 (default ${DEFAULT-VALUE})")
    private int pairs = 20;

    @Option(names = "--warmup-pairs", paramLabel = "N", converter = WarmupPairs.class,
            description = "pairs run first and not counted, 0..10000 (default ${DEFAULT-VALUE})")
    private int warmupPairs = 6;

    @Option(names = "--slice-ms", paramLabel = "MS", converter = SliceMs.class,
            description = "length of one slice, 1..60000 ms (default ${DEFAULT-VALUE})")
    private long sliceMs = 250;

    @Spec
    private CommandSpec spec;

    /** For picocli. */
    public ReadRatioHarness() {
    }

    /** The address distributions of {@link CacheReadBenchmark}. */
    enum Distribution { uniform, zipf }

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        out.printf("offmm reads: 64-byte reads into a byte[], %d thread(s), %d pairs of %d ms slices (+%d warm-up pairs)"
                + ", thp=%s, host huge pages=%s%n", threads, pairs, sliceMs, warmupPairs, thp, hostHugePages);
        out.printf("%-9s %-8s %-4s %14s %14s %7s %15s%n", "size", "dist", "thp", "offmm M/s", "plain M/s", "ratio",
                "ratio min-max");
        for (long size : sizes) {
            for (Distribution d : distributions) {
                runCase(out, size, d);
            }
        }
        return 0;
    }

    private void runCase(PrintWriter out, long size, Distribution d) throws Exception {
        CacheReadBenchmark.Memory m = new CacheReadBenchmark.Memory();
        m.size = size;
        m.distribution = d.name();
        m.hostHugePages = hostHugePages;
        m.thp = thp && size >= 2L << 20;
        m.setUp();
        try {
            double[][] rates = measure(m);
            double[] ratio = new double[pairs];
            for (int i = 0; i < pairs; i++) {
                ratio[i] = rates[0][i] / rates[1][i];
            }
            out.printf(Locale.ROOT, "%-9s %-8s %-4s %14s %14s %7.2f %15s%n", Size.format(size), d, m.thp,
                    spread(rates[0]), spread(rates[1]), median(ratio), String.format(Locale.ROOT, "%.2f-%.2f",
                            min(ratio), max(ratio)));
            out.flush();
        } finally {
            m.tearDown();
        }
    }

    /** {@return reads per microsecond of every measured slice: [0] offmm, [1] plain, pair by pair} */
    private double[][] measure(CacheReadBenchmark.Memory m) throws Exception {
        int slices = 2 * (warmupPairs + pairs);
        long[][] ops = new long[threads][slices];
        long[] nanos = new long[slices];
        CyclicBarrier start = new CyclicBarrier(threads);
        CyclicBarrier end = new CyclicBarrier(threads);
        List<Thread> workers = new ArrayList<>();
        Throwable[] failure = new Throwable[threads];
        long sliceNanos = TimeUnit.MILLISECONDS.toNanos(sliceMs);
        for (int t = 0; t < threads; t++) {
            int id = t;
            workers.add(Thread.ofPlatform().name("reads-" + t).start(() -> {
                CacheReadBenchmark.Reader r = new CacheReadBenchmark.Reader();
                r.setUp(m);
                try {
                    for (int s = 0; s < slices; s++) {
                        start.await();
                        long t0 = System.nanoTime();
                        ops[id][s] = offmmFirst(s) == (s % 2 == 0) ? offmmSlice(m, r, t0 + sliceNanos)
                                : plainSlice(m, r, t0 + sliceNanos);
                        long elapsed = System.nanoTime() - t0;
                        if (id == 0) {
                            nanos[s] = elapsed;
                        }
                        end.await();
                    }
                } catch (Throwable e) {
                    failure[id] = e;
                    start.reset();
                    end.reset();
                } finally {
                    r.tearDown();
                }
            }));
        }
        for (Thread w : workers) {
            w.join();
        }
        for (Throwable f : failure) {
            if (f != null) {
                throw new IllegalStateException("a reader failed", f);
            }
        }
        double[][] rates = new double[2][pairs];
        for (int p = 0; p < pairs; p++) {
            for (int half = 0; half < 2; half++) {
                int s = 2 * (warmupPairs + p) + half;
                long sum = 0;
                for (long[] perThread : ops) {
                    sum += perThread[s];
                }
                boolean offmm = offmmFirst(s) == (half == 0);
                rates[offmm ? 0 : 1][p] = sum * 1e3 / nanos[s];
            }
        }
        return rates;
    }

    /** Pairs alternate which side goes first: offmm, plain | plain, offmm | offmm, plain ... */
    private static boolean offmmFirst(int slice) {
        return (slice / 2) % 2 == 0;
    }

    // Two copies of one loop on purpose: each compiles with its own read in line; one loop taking the
    // read as a lambda would call it through a megamorphic site and measure the call.
    private static long offmmSlice(CacheReadBenchmark.Memory m, CacheReadBenchmark.Reader r, long deadline) {
        CacheReadBenchmark b = BENCH;
        long n = 0;
        int sink = 0;
        do {
            for (int i = 0; i < BATCH; i++) {
                sink += b.offmmRead64(m, r);
            }
            n += BATCH;
        } while (System.nanoTime() < deadline);
        SINK[0] += sink;
        return n;
    }

    private static long plainSlice(CacheReadBenchmark.Memory m, CacheReadBenchmark.Reader r, long deadline) {
        CacheReadBenchmark b = BENCH;
        long n = 0;
        int sink = 0;
        do {
            for (int i = 0; i < BATCH; i++) {
                sink += b.plainRead64(m, r);
            }
            n += BATCH;
        } while (System.nanoTime() < deadline);
        SINK[0] += sink;
        return n;
    }

    private static final CacheReadBenchmark BENCH = new CacheReadBenchmark();
    /** Where the slices' results go, so the JIT cannot drop the reads (racy on purpose: only kept, never read). */
    private static final int[] SINK = new int[1];

    private static String spread(double[] v) {
        return String.format(Locale.ROOT, "%.2f", median(v));
    }

    static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    private static double min(double[] v) {
        return Arrays.stream(v).min().orElseThrow();
    }

    private static double max(double[] v) {
        return Arrays.stream(v).max().orElseThrow();
    }

    /** A size in bytes with an optional k, m or g suffix (powers of 1024), 4 KiB to 64 GiB. */
    static final class Size implements ITypeConverter<Long> {
        @Override
        public Long convert(String value) {
            String v = value.trim().toLowerCase(Locale.ROOT);
            int shift = v.endsWith("k") ? 10 : v.endsWith("m") ? 20 : v.endsWith("g") ? 30 : 0;
            long n;
            try {
                n = Long.parseLong(shift == 0 ? v : v.substring(0, v.length() - 1));
            } catch (NumberFormatException e) {
                throw new TypeConversionException("'" + value + "' is not a size (expected e.g. 256k, 256m, 4g)");
            }
            if (n <= 0 || n > (64L << 30) >> shift || (n << shift) < 4096 || ((n << shift) & 4095) != 0) {
                throw new TypeConversionException("'" + value + "' is out of range (expected a multiple of 4k, 4k..64g)");
            }
            return n << shift;
        }

        static String format(long bytes) {
            return bytes >= 1L << 30 && bytes % (1L << 30) == 0 ? (bytes >> 30) + " GiB"
                    : bytes >= 1L << 20 && bytes % (1L << 20) == 0 ? (bytes >> 20) + " MiB" : (bytes >> 10) + " KiB";
        }
    }

    /** Reader threads. */
    static final class Threads extends Ranges.IntRange {
        Threads() {
            super(1, 64);
        }
    }

    /** Measured pairs. */
    static final class Pairs extends Ranges.IntRange {
        Pairs() {
            super(1, 10_000);
        }
    }

    /** Warm-up pairs. */
    static final class WarmupPairs extends Ranges.IntRange {
        WarmupPairs() {
            super(0, 10_000);
        }
    }

    /** Slice length. */
    static final class SliceMs extends Ranges.LongRange {
        SliceMs() {
            super(1, 60_000);
        }
    }
}
