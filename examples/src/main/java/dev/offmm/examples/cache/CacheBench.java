package dev.offmm.examples.cache;

import org.HdrHistogram.Histogram;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The cache peers benchmark: one workload against offmm's {@link OffHeapCache},
 * {@code ConcurrentHashMap<Long, byte[]>} with a byte budget and Caffeine with
 * {@code maximumWeight}, each run in a JVM of its own (same java, class path and heap size), in
 * interleaved rounds. Each run fills the cache with every key once, then runs gets and puts of
 * Zipf-distributed keys from T threads for a warm-up and a measured interval, and reports
 * throughput, p99 get latency (HdrHistogram), GC time during the measured interval, heap used after
 * a full GC, the process's VmRSS and, for offmm, its own resident bytes.
 *
 * <p>Why a JVM per run: in one JVM, the garbage of one peer's run is collected during another's,
 * and the heap after a GC holds whatever an earlier peer left reachable; a fresh JVM per run
 * attributes heap, GC and RSS to the peer alone.
 */
@Command(name = "cache-bench", mixinStandardHelpOptions = true, version = "offmm cache-bench 0.1",
        description = "offmm's off-heap cache against ConcurrentHashMap and Caffeine at the same byte budget.")
public final class CacheBench implements Callable<Integer> {
    static final String RESULT = "RESULT,";
    /** The first line of the CSV. */
    public static final String CSV_HEADER = "round,peer,threads,entries,budget_bytes,ops_per_s,get_p50_ns,get_p99_ns,hit_rate,"
            + "gc_ms,gc_count,heap_used_bytes,vm_rss_bytes,own_rss_bytes,page_table_bytes,live_bytes";
    private static final double MEAN_OVERHEAD = 1.0;

    @Option(names = "--entries", description = "Keys (default ${DEFAULT-VALUE}; 10000000 for full size).")
    long entries = 1_000_000;
    @Option(names = "--budget-fraction",
            description = "Byte budget as a fraction of all values' bytes (default ${DEFAULT-VALUE}).")
    double budgetFraction = 0.5;
    @Option(names = "--budget-mb", description = "Byte budget in MiB (overrides --budget-fraction).")
    long budgetMb;
    @Option(names = "--min-value", description = "Smallest value, bytes (default ${DEFAULT-VALUE}).")
    int minValue = 100;
    @Option(names = "--max-value", description = "Largest value, bytes (default ${DEFAULT-VALUE}).")
    int maxValue = 2000;
    @Option(names = "--get-ratio", description = "Fraction of operations that are gets (default ${DEFAULT-VALUE}).")
    double getRatio = 0.9;
    @Option(names = "--zipf", description = "Zipf exponent of the key distribution (default ${DEFAULT-VALUE}).")
    double zipf = 0.99;
    @Option(names = "--threads", split = ",", description = "Thread counts (default 1,2).")
    int[] threads = {1, 2};
    @Option(names = "--peers", split = ",", description = "Peers: offmm, chm, caffeine (default all).")
    String[] peers = {"offmm", "chm", "caffeine"};
    @Option(names = "--seconds", description = "Measured seconds per run (default ${DEFAULT-VALUE}).")
    double seconds = 5;
    @Option(names = "--warmup", description = "Warm-up seconds per run (default ${DEFAULT-VALUE}).")
    double warmup = 2;
    @Option(names = "--rounds", description = "Rounds; each runs every peer at every thread count, in an order rotated per round"
            + " (default ${DEFAULT-VALUE}).")
    int rounds = 2;
    @Option(names = "--sample", description = "Time every Nth get (default ${DEFAULT-VALUE}).")
    int sample = 8;
    @Option(names = "--xmx", description = "Heap of each run's JVM, e.g. 16g (default: from the budget).")
    String xmx;
    @Option(names = "--in-process", description = "Run every peer in this JVM instead of a JVM per run (heap and GC muddled).")
    boolean inProcess;
    @Option(names = "--csv", description = "Also write the CSV to this file.")
    Path csv;
    @Option(names = "--seed", description = "Random seed (default ${DEFAULT-VALUE}).")
    long seed = 1;
    @Option(names = "--host-huge-pages", arity = "1", description = "Host 2 MiB pages for every peer: offmm's physical memory"
            + " MADV_HUGEPAGE, -XX:+UseTransparentHugePages for the JVMs of all (default ${DEFAULT-VALUE}).")
    boolean hostHugePages = true;
    @Option(names = "--child", hidden = true)
    String child;
    @Option(names = "--round", hidden = true)
    int round;

    private PrintStream out = System.out;

    /** Runs the benchmark; exits with 0, or 2 on a usage error. */
    public static void main(String[] args) {
        int code = run(args, System.out, System.err);
        if (code != 0) {
            System.exit(code);
        }
    }

    /** Runs with {@code args}, printing to {@code out} and {@code err}; returns the exit status. */
    public static int run(String[] args, PrintStream out, PrintStream err) {
        CacheBench bench = new CacheBench();
        bench.out = out;
        CommandLine cl = new CommandLine(bench);
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        cl.setParameterExceptionHandler((ex, a) -> {
            err.println("cache-bench: " + ex.getMessage() + " (see --help)");
            return 2;
        });
        return cl.execute(args);
    }

    @Override
    public Integer call() throws Exception {
        validate();
        long budget = budget();
        if (child != null) {
            out.println(RESULT + runOne(child, threads[0], budget, round));
            return 0;
        }
        out.printf("cache-bench: %d entries, values %d-%d B, budget %d MiB, %.0f%% gets, Zipf(%.2f), threads %s, "
                        + "%d round(s) of %.1f s (+%.1f s warm-up), %s%n",
                entries, minValue, maxValue, budget >> 20, getRatio * 100, zipf, java.util.Arrays.toString(threads),
                rounds, seconds, warmup, inProcess ? "one JVM" : "a JVM per run (-Xmx" + heap(budget) + ")");
        List<String> rows = new ArrayList<>();
        for (int r = 1; r <= rounds; r++) {
            for (int t : threads) {
                // The order rotates from round to round, so that no peer always runs first, or
                // always right after the JVM that left the host's memory most fragmented.
                for (int i = 0; i < peers.length; i++) {
                    String p = peers[(i + r - 1) % peers.length];
                    String row = inProcess ? runOne(p, t, budget, r) : forked(p, t, r);
                    out.println("  " + row);
                    rows.add(row);
                }
            }
        }
        report(rows);
        return 0;
    }

    private void validate() {
        CommandLine.Model.CommandSpec spec = new CommandLine(this).getCommandSpec();
        check(spec, entries >= 1000 && entries <= 1L << 31, "--entries=" + entries + " (expected 1000 .. 2^31)");
        check(spec, minValue >= 1 && maxValue >= minValue && maxValue <= OffHeapCache.MAX_VALUE_LIMIT,
                "--min-value=" + minValue + ", --max-value=" + maxValue + " (expected 1 <= min <= max <= 65535)");
        check(spec, budgetFraction > 0 && budgetFraction <= 4, "--budget-fraction=" + budgetFraction + " (expected 0 < f <= 4)");
        check(spec, budgetMb >= 0, "--budget-mb=" + budgetMb + " (expected >= 0)");
        check(spec, getRatio >= 0 && getRatio <= 1, "--get-ratio=" + getRatio + " (expected 0 .. 1)");
        check(spec, zipf > 0 && zipf < 10, "--zipf=" + zipf + " (expected 0 < s < 10)");
        check(spec, seconds > 0 && warmup >= 0, "--seconds=" + seconds + ", --warmup=" + warmup + " (expected > 0, >= 0)");
        check(spec, rounds >= 1 && sample >= 1, "--rounds=" + rounds + ", --sample=" + sample + " (expected >= 1)");
        for (int t : threads) {
            check(spec, t >= 1 && t <= 256, "--threads=" + t + " (expected 1 .. 256)");
        }
        for (String p : peers) {
            check(spec, List.of("offmm", "chm", "caffeine").contains(p), "--peers=" + p + " (expected offmm, chm or caffeine)");
        }
        check(spec, xmx == null || xmx.matches("[0-9]+[kmgKMG]?"), "--xmx=" + xmx + " (expected e.g. 16g)");
    }

    private static void check(CommandLine.Model.CommandSpec spec, boolean ok, String message) {
        if (!ok) {
            throw new CommandLine.ParameterException(spec.commandLine(), message);
        }
    }

    long budget() {
        if (budgetMb > 0) {
            return budgetMb << 20;
        }
        double mean = (minValue + maxValue) / 2.0 * MEAN_OVERHEAD;
        return Math.max(8L << 20, (long) (entries * mean * budgetFraction));
    }

    private String heap(long budget) {
        if (xmx != null) {
            return xmx;
        }
        // Room for the budget's byte[]s, their boxes and nodes, and the garbage of the fill.
        long mb = Math.max(1024, (long) (2.5 * budget / (1 << 20)) + 1024);
        return mb + "m";
    }

    private String forked(String peer, int t, int r) throws IOException, InterruptedException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new ArrayList<>(List.of(java, "-Xms" + heap(budget()), "-Xmx" + heap(budget()),
                "--enable-native-access=ALL-UNNAMED",
                hostHugePages ? "-XX:+UseTransparentHugePages" : "-XX:-UseTransparentHugePages",
                "-cp", System.getProperty("java.class.path"),
                CacheBench.class.getName(), "--host-huge-pages", Boolean.toString(hostHugePages),
                "--child", peer, "--round", Integer.toString(r),
                "--threads", Integer.toString(t), "--entries", Long.toString(entries),
                "--budget-mb", Long.toString(Math.max(1, budget() >> 20)),
                "--min-value", Integer.toString(minValue), "--max-value", Integer.toString(maxValue),
                "--get-ratio", Double.toString(getRatio), "--zipf", Double.toString(zipf),
                "--seconds", Double.toString(seconds), "--warmup", Double.toString(warmup),
                "--sample", Integer.toString(sample), "--seed", Long.toString(seed)));
        Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        String result = null;
        try (BufferedReader in = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            for (String line; (line = in.readLine()) != null;) {
                if (line.startsWith(RESULT)) {
                    result = line.substring(RESULT.length());
                }
            }
        }
        int code = p.waitFor();
        if (code != 0 || result == null) {
            throw new IllegalStateException("run of " + peer + " with " + t + " threads failed (exit " + code + ")");
        }
        return result;
    }

    /** One run in this JVM: fill, warm up, measure; returns a CSV row. */
    String runOne(String peerName, int nThreads, long budget, int r) throws InterruptedException {
        long fitting = budget / (OffHeapCache.HEADER + (minValue + maxValue) / 2);
        try (BenchPeers.Peer peer = BenchPeers.create(peerName, entries, fitting, budget, maxValue, hostHugePages)) {
            fill(peer);
            System.gc();
            Histogram[] hist = new Histogram[nThreads];
            long[] ops = new long[nThreads];
            AtomicBoolean measuring = new AtomicBoolean();
            AtomicBoolean stop = new AtomicBoolean();
            Thread[] ts = new Thread[nThreads];
            for (int t = 0; t < nThreads; t++) {
                int id = t;
                hist[t] = new Histogram(60_000_000_000L, 3);
                ts[t] = new Thread(() -> ops[id] = work(peer, id, hist[id], measuring, stop), "cache-bench-" + t);
                ts[t].start();
            }
            Thread.sleep((long) (warmup * 1000));
            long gc0 = gcMillis();
            long gcn0 = gcCount();
            long t0 = System.nanoTime();
            measuring.set(true);
            Thread.sleep((long) (seconds * 1000));
            stop.set(true);
            for (Thread t : ts) {
                t.join();
            }
            double elapsed = (System.nanoTime() - t0) / 1e9;
            long gcMs = gcMillis() - gc0;
            long gcN = gcCount() - gcn0;
            long vmRss = vmRssBytes();
            System.gc();
            long heapUsed = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
            Histogram all = new Histogram(60_000_000_000L, 3);
            long total = 0;
            for (int t = 0; t < nThreads; t++) {
                all.add(hist[t]);
                total += ops[t];
            }
            long ptBytes = peer instanceof BenchPeers.OffmmPeer o ? o.cache().stats().pageTableBytes() : -1;
            return String.join(",", Integer.toString(r), peerName, Integer.toString(nThreads), Long.toString(entries),
                    Long.toString(budget), Long.toString((long) (total / elapsed)),
                    Long.toString(all.getValueAtPercentile(50)), Long.toString(all.getValueAtPercentile(99)),
                    String.format("%.4f", peer.hitRate()), Long.toString(gcMs), Long.toString(gcN),
                    Long.toString(heapUsed), Long.toString(vmRss), Long.toString(peer.ownRssBytes()), Long.toString(ptBytes),
                    Long.toString(peer.liveBytes()));
        }
    }

    private void fill(BenchPeers.Peer peer) {
        SplittableRandom rnd = new SplittableRandom(seed);
        byte[] v = value(rnd);
        try (BenchPeers.Worker w = peer.worker()) {
            for (long k = 0; k < entries; k++) {
                w.put(k, v, rnd.nextInt(minValue, maxValue + 1));
            }
        }
    }

    private byte[] value(SplittableRandom rnd) {
        byte[] v = new byte[maxValue];
        rnd.nextBytes(v);
        v[0] = 2;
        return v;
    }

    private long work(BenchPeers.Peer peer, int id, Histogram hist, AtomicBoolean measuring, AtomicBoolean stop) {
        SplittableRandom rnd = new SplittableRandom(seed * 1_000_003 + id);
        Zipf keys = new Zipf(entries, zipf);
        byte[] v = value(rnd);
        long ops = 0;
        long hits = 0;
        int gets = 0;
        boolean counting = false;
        try (BenchPeers.Worker w = peer.worker()) {
            while (!stop.get()) {
                if (!counting && measuring.get()) {
                    counting = true;
                    ops = 0;
                }
                for (int i = 0; i < 64; i++) {
                    long key = keys.sample(rnd) - 1;
                    if (rnd.nextDouble() < getRatio) {
                        if (counting && ++gets == sample) {
                            gets = 0;
                            long t0 = System.nanoTime();
                            hits += w.get(key) ? 1 : 0;
                            hist.recordValue(System.nanoTime() - t0);
                        } else {
                            hits += w.get(key) ? 1 : 0;
                        }
                    } else {
                        w.put(key, v, rnd.nextInt(minValue, maxValue + 1));
                    }
                }
                ops += 64;
            }
        }
        return hits < 0 ? -ops : ops;
    }

    private static long gcMillis() {
        long sum = 0;
        for (GarbageCollectorMXBean b : ManagementFactory.getGarbageCollectorMXBeans()) {
            sum += Math.max(0, b.getCollectionTime());
        }
        return sum;
    }

    private static long gcCount() {
        long sum = 0;
        for (GarbageCollectorMXBean b : ManagementFactory.getGarbageCollectorMXBeans()) {
            sum += Math.max(0, b.getCollectionCount());
        }
        return sum;
    }

    /** VmRSS of this process from /proc/self/status, or -1 where there is none. */
    static long vmRssBytes() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) << 10;
                }
            }
            return -1;
        } catch (IOException e) {
            return -1;
        }
    }

    private void report(List<String> rows) {
        Map<String, List<String[]>> byRun = new LinkedHashMap<>();
        for (String row : rows) {
            String[] f = row.split(",");
            byRun.computeIfAbsent(f[1] + "," + f[2], k -> new ArrayList<>()).add(f);
        }
        out.println();
        out.printf("%-9s %3s %14s %10s %10s %8s %9s %6s %11s %11s %11s %9s%n", "peer", "thr", "ops/s (median)", "p50 ns",
                "p99 ns", "hit", "GC ms", "GCs", "heap MiB", "VmRSS MiB", "own RSS MiB", "live MiB");
        for (List<String[]> runs : byRun.values()) {
            runs.sort(Comparator.comparingLong(f -> Long.parseLong(f[5])));
            String[] m = runs.get(runs.size() / 2);
            out.printf("%-9s %3s %14s %10s %10s %8s %9s %6s %11d %11d %11s %9d%n", m[1], m[2], m[5], m[6], m[7], m[8], m[9],
                    m[10], Long.parseLong(m[11]) >> 20, Long.parseLong(m[12]) >> 20,
                    Long.parseLong(m[13]) < 0 ? "-" : Long.toString(Long.parseLong(m[13]) >> 20), Long.parseLong(m[15]) >> 20);
        }
        out.println();
        out.println("CSV");
        out.println(CSV_HEADER);
        rows.forEach(out::println);
        if (csv != null) {
            List<String> lines = new ArrayList<>();
            lines.add(CSV_HEADER);
            lines.addAll(rows);
            try {
                Files.write(csv, lines);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }
}
