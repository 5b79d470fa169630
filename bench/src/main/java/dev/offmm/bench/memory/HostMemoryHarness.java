package dev.offmm.bench.memory;

import dev.offmm.bench.cli.Ranges;
import dev.offmm.bench.cli.Version;
import dev.offmm.bench.stat.LiveCounters;
import dev.offmm.core.AddressSpace;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Mmu;
import dev.offmm.core.Prot;
import dev.offmm.core.VmConfig;
import dev.offmm.offheap.PhysicalMemory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.Callable;

/**
 * {@code offmm memory}: what physical memory costs the host. Three measurements, each repeated:
 * creating the largest capacity (time and RSS; the first create of the process apart, since it
 * pays the JDK's one-time FFM linker bootstrap), giving memory back (map and touch 1 GiB, munmap,
 * and how long until the process RSS is back within 32 MiB + 5 % of where it started), and a touch
 * after that (it must read zeros). RSS is the process's, from {@code /proc/self/statm}.
 */
@Command(name = "memory", mixinStandardHelpOptions = true, versionProvider = Version.class, sortOptions = false,
        description = "What physical memory costs the host: create, give-back after munmap, re-touch.")
public final class HostMemoryHarness implements Callable<Integer> {
    private static final long MIB = 1L << 20;

    @Option(names = "--repeat", paramLabel = "N", converter = Ranges.Repetitions.class,
            description = "repetitions of each measurement, 1..1000 (default ${DEFAULT-VALUE})")
    private int repeat = 5;

    @Option(names = "--gib", paramLabel = "G", converter = Gib.class,
            description = "GiB mapped, touched and unmapped per round, 1..16 (default ${DEFAULT-VALUE})")
    private long touchGib = 1;

    @Option(names = "--delay-ms", paramLabel = "D", converter = DelayMs.class,
            description = "free page reporting delay, ms, 0..3600000 (default ${DEFAULT-VALUE})")
    private long delayMs = PhysicalMemory.DEFAULT_REPORT_DELAY.toMillis();

    @Option(names = "--discard", paramLabel = "HOW",
            description = "how reported memory goes back to the host: ${COMPLETION-CANDIDATES} (default ${DEFAULT-VALUE})")
    private PhysicalMemory.Discard discard = PhysicalMemory.Discard.DONTNEED;

    /** For picocli. */
    public HostMemoryHarness() {
    }

    /** Runs the harness: {@code [--repeat N] [--gib G] [--delay-ms D] [--discard DONTNEED|FREE]}. */
    @Override
    public Integer call() throws Exception {
        PrintStream out = System.out;
        out.printf("offmm memory: %d repetitions; RSS from /proc/self/statm%n", repeat);
        create(out, repeat);
        giveBack(out, repeat, touchGib, delayMs, discard);
        return 0;
    }

    /** GiB per round. */
    static final class Gib extends Ranges.LongRange {
        Gib() {
            super(1, 16);
        }
    }

    /** Reporting delay. */
    static final class DelayMs extends Ranges.LongRange {
        DelayMs() {
            super(0, 3_600_000);
        }
    }

    private static void create(PrintStream out, int repeat) {
        long[] micros = new long[repeat];
        long[] rssKib = new long[repeat];
        long t0 = System.nanoTime();
        long r0 = rss();
        PhysicalMemory first = PhysicalMemory.create(PhysicalMemory.MAX_BYTES);
        out.printf("create(64 GiB), first in this process: %.1f ms, RSS +%d KiB (includes the JDK's FFM linker bootstrap)%n",
                (System.nanoTime() - t0) / 1e6, (rss() - r0) >> 10);
        first.close();
        for (int i = 0; i < repeat; i++) {
            long before = rss();
            long t = System.nanoTime();
            PhysicalMemory m = PhysicalMemory.create(PhysicalMemory.MAX_BYTES);
            micros[i] = (System.nanoTime() - t) / 1000;
            rssKib[i] = (rss() - before) >> 10;
            m.close();
        }
        out.printf("create(64 GiB), later: median %d us (%s), RSS +%d KiB median (%s)%n", median(micros), range(micros),
                median(rssKib), range(rssKib));
    }

    private static void giveBack(PrintStream out, int repeat, long gib, long delayMs, PhysicalMemory.Discard discard)
            throws InterruptedException {
        long bytes = gib << 30;
        long[] backMillis = new long[repeat];
        long[] retouch = new long[repeat];
        try (PhysicalMemory memory = PhysicalMemory.builder().bytes(bytes + (256 * MIB))
                .reportFreeAfter(Duration.ofMillis(delayMs)).discard(discard).build();
             AddressSpace as = AddressSpace.create(memory, VmConfig.builder().build());
             Mmu mmu = as.attach()) {
            // Warm-up: the JIT's code and the JVM's own growth are not what the rounds measure.
            for (int w = 0; w < 3; w++) {
                long a = as.mmap(0, 64 * MIB, Prot.READ | Prot.WRITE, MapFlags.NONE);
                for (long off = 0; off < 64 * MIB; off += PhysicalMemory.PAGE_SIZE) {
                    mmu.putLong(a + off, off | 1);
                    mmu.getLong(a + off + 8);
                }
                as.munmap(a, 64 * MIB);
            }
            for (int i = 0; i < repeat; i++) {
                // Start from a settled memory: the previous round's re-touch given back too.
                long settle = System.nanoTime();
                while (memory.committedBytes() > 64 * MIB && System.nanoTime() - settle < 20_000_000_000L) {
                    Thread.sleep(20);
                }
                long before = rss();
                long a = as.mmap(0, bytes, Prot.READ | Prot.WRITE, MapFlags.NONE);
                for (long off = 0; off < bytes; off += PhysicalMemory.PAGE_SIZE) {
                    mmu.putLong(a + off, off | 1);
                }
                long touched = rss();
                as.munmap(a, bytes);
                long t = System.nanoTime();
                long limit = before + 32 * MIB + before / 20;
                long now = rss();
                while (now > limit && System.nanoTime() - t < 20_000_000_000L) {
                    Thread.sleep(20);
                    now = rss();
                }
                backMillis[i] = (System.nanoTime() - t) / 1_000_000;
                long committed = memory.committedBytes();
                long a2 = as.mmap(0, bytes, Prot.READ | Prot.WRITE, MapFlags.NONE);
                long nonZero = 0;
                long t2 = System.nanoTime();
                for (long off = 0; off < bytes; off += PhysicalMemory.PAGE_SIZE) {
                    mmu.putLong(a2 + off, 1); // a write fault; the rest of the page must be zeros
                    nonZero += mmu.getLong(a2 + off + 8) != 0 ? 1 : 0;
                }
                retouch[i] = (System.nanoTime() - t2) / 1_000_000;
                as.munmap(a2, bytes);
                out.printf("  round %d: RSS %d MiB before, %d MiB touched, %d MiB %d ms after munmap%s; "
                        + "committed estimate then %d MiB, reported %d blocks so far; re-touch: %s%n", i + 1, before >> 20,
                        touched >> 20, now >> 20, backMillis[i], now > limit ? " (NOT back within 32 MiB + 5 %)" : "",
                        committed >> 20, memory.reportedBlocks(),
                        nonZero == 0 ? "zeros" : nonZero + " pages NOT zero");
            }
        }
        long[] touchMs = retouch;
        out.printf("map, touch %d GiB, munmap: RSS back within 32 MiB + 5 %% after median %d ms (%s), delay %d ms, %s;"
                + " touching it again: median %d ms (%s)%n", gib, median(backMillis), range(backMillis), delayMs, discard,
                median(touchMs), range(touchMs));
    }

    static long rss() {
        long bytes = LiveCounters.processRssBytes();
        if (bytes == 0) {
            throw new IllegalStateException("no /proc/self/statm: this harness needs Linux");
        }
        return bytes;
    }

    private static long median(long[] v) {
        long[] s = v.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }

    private static String range(long[] v) {
        return Arrays.stream(v).min().getAsLong() + "-" + Arrays.stream(v).max().getAsLong();
    }
}
