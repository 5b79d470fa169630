package dev.offmm.bench.stat;

import dev.offmm.bench.cli.Ranges;
import dev.offmm.bench.cli.Version;
import org.agrona.concurrent.status.CountersReader;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

/**
 * {@code offmm stat [--file F] [--interval S] [--count N]}: watches a running offmm process's
 * live counters, one line per interval, like {@code vmstat 1}. Rates are per second; columns
 * marked as gauges are current values. Without {@code --file} it picks the newest counters file
 * of a live process.
 */
@Command(name = "stat", mixinStandardHelpOptions = true, versionProvider = Version.class, sortOptions = false,
        description = "Watches a running harness's live counters, one line per interval, like vmstat 1.")
public final class StatCommand implements Callable<Integer> {
    private static final String[][] COLUMNS = {
        {"ops/s", "ops"}, {"anon/s", "faults.anon"}, {"zero/s", "faults.zero"}, {"cow/s", "faults.cow"},
        {"oom/s", "faults.oom"}, {"pgalloc/s", "pages.alloc"}, {"pgfree/s", "pages.free"}, {"tblalloc/s", "tables.alloc"},
        {"tblfree/s", "tables.free"}, {"ptl-c/s", "ptl.cont"}, {"pmd-c/s", "pmd.cont"}, {"pte-c/s", "pte.cont"},
        {"flush/s", "tlb.flushes"}, {"grace/s", "grace.periods"}, {"rss", "rss!"}, {"pending", "grace.pending!"},
        {"free", "frames.free!"}, {"commitMiB", "mem.committed!"}, {"reportMiB", "mem.reported!"},
        {"structMiB", "mem.structpages!"}, {"procRSSMiB", "proc.rss!"}, {"thp/s", "faults.thp"},
        {"hugetlb/s", "faults.hugetlb"}, {"thpfb/s", "thp.fallback"}, {"split/s", "thp.split"},
        {"collapse/s", "thp.collapse"}, {"huge", "huge!"},
    };

    @Option(names = "--file", paramLabel = "F",
            description = "the counters file (default: the newest of a live process in the counters directory)")
    private Path file;

    @Option(names = "--interval", paramLabel = "S", converter = Interval.class,
            description = "seconds between lines, > 0 and <= 3600 (default ${DEFAULT-VALUE})")
    private double interval = 1;

    @Option(names = "--count", paramLabel = "N", converter = Count.class,
            description = "lines to print, >= 1 (default: until the process exits)")
    private long count = Long.MAX_VALUE;

    /** For picocli. */
    public StatCommand() {
    }

    /** Seconds between lines. */
    static final class Interval extends Ranges.DoubleRange {
        Interval() {
            super(0, false, 3600);
        }
    }

    /** Lines. */
    static final class Count extends Ranges.LongRange {
        Count() {
            super(1, Long.MAX_VALUE);
        }
    }

    /** Runs the command: 1 if no live process is found. */
    @Override
    public Integer call() throws Exception {
        Path f = file;
        if (f == null) {
            f = newestLive();
            if (f == null) {
                System.err.println("offmm stat: no running offmm process found in " + CounterFile.directory()
                        + " (start one, e.g. ./offmm scale)");
                return 1;
            }
        }
        watch(CounterFile.open(f), f, interval, count, System.out);
        return 0;
    }

    private static Path newestLive() throws IOException {
        Path dir = CounterFile.directory();
        if (!Files.isDirectory(dir)) {
            return null;
        }
        try (Stream<Path> files = Files.list(dir)) {
            List<Path> live = files.filter(p -> p.getFileName().toString().endsWith(".cnc")).filter(p -> {
                try {
                    return ProcessHandle.of(CounterFile.open(p).pid()).map(ProcessHandle::isAlive).orElse(false);
                } catch (IOException e) {
                    return false;
                }
            }).sorted((a, b) -> Long.compare(b.toFile().lastModified(), a.toFile().lastModified())).toList();
            return live.isEmpty() ? null : live.getFirst();
        }
    }

    static void watch(CounterFile f, Path file, double interval, long count, PrintStream out) throws InterruptedException {
        CountersReader reader = new CountersReader(f.metadata, f.values);
        Map<String, Integer> ids = new HashMap<>();
        reader.forEach((id, label) -> ids.put(label, id));
        out.println("offmm stat: pid " + f.pid() + " (" + file + ")");
        StringBuilder head = new StringBuilder();
        for (String[] c : COLUMNS) {
            head.append(String.format("%11s", c[0]));
        }
        long[] prev = sample(reader, ids);
        long prevT = System.nanoTime();
        for (long n = 0; n < count; n++) {
            if (n % 20 == 0) {
                out.println(head);
            }
            Thread.sleep((long) (interval * 1000));
            long[] cur = sample(reader, ids);
            long now = System.nanoTime();
            double secs = (now - prevT) / 1e9;
            StringBuilder line = new StringBuilder();
            for (int i = 0; i < COLUMNS.length; i++) {
                boolean gauge = COLUMNS[i][1].endsWith("!");
                double v = gauge ? cur[i] : (cur[i] - prev[i]) / secs;
                line.append(String.format("%11.0f", v));
            }
            out.println(line);
            prev = cur;
            prevT = now;
            if (!ProcessHandle.of(f.pid()).map(ProcessHandle::isAlive).orElse(false)) {
                out.println("offmm stat: process " + f.pid() + " has exited");
                return;
            }
        }
    }

    private static long[] sample(CountersReader reader, Map<String, Integer> ids) {
        long[] v = new long[COLUMNS.length];
        for (int i = 0; i < COLUMNS.length; i++) {
            Integer id = ids.get(COLUMNS[i][1]);
            v[i] = id == null ? 0 : reader.getCounterValue(id);
        }
        return v;
    }
}
