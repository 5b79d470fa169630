package dev.offmm.bench.fork;

import dev.offmm.bench.cli.Ranges;
import dev.offmm.bench.cli.Version;
import dev.offmm.core.AddressSpace;
import dev.offmm.core.LockMode;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Mmu;
import dev.offmm.core.Prot;
import dev.offmm.core.VmConfig;
import dev.offmm.core.VmStats;
import dev.offmm.offheap.PhysicalMemory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.locks.LockSupport;

/**
 * {@code offmm fork}: fork of an address space holding {@code --mib} MiB of written pages, with
 * PTE tables shared and with them copied, beside the host kernel's {@code fork()} of a process
 * holding as much written anonymous memory; then the COW storm, the first write to every page in
 * the parent while the child lives. Repetitions are interleaved (kernel, shared, copied, in turn)
 * and reported as medians with their range.
 *
 * <p>The kernel's side runs in a small C program ({@code bench/src/main/c/kernel_fork.c}, built
 * with the system's {@code cc} into {@code bench/target}), not through FFM {@code fork()} inside
 * the JVM: the child of a multi-threaded JVM may run no Java code, and the JVM's own gigabytes of
 * mappings would be copied too. Without a C compiler the kernel columns are skipped. Each
 * measurement starts after a GC and a 300 ms pause (untimed); the "hot" fork is a second one
 * right after a fork and close of the same tables, with nothing in between.
 */
@Command(name = "fork", mixinStandardHelpOptions = true, versionProvider = Version.class, sortOptions = false,
        description = "Fork with shared and with copied page tables beside the kernel's fork(), and the COW storm.")
public final class ForkHarness implements Callable<Integer> {
    private static final long MIB = 1L << 20;
    private static final long PAGE = 4096;

    @Option(names = "--repeat", paramLabel = "N", converter = Ranges.Repetitions.class,
            description = "interleaved repetitions, 1..1000 (default ${DEFAULT-VALUE})")
    private int repeat = 7;

    @Option(names = "--mib", paramLabel = "M", converter = Mib.class,
            description = "MiB of written pages in the parent, 2..8192 (default ${DEFAULT-VALUE})")
    private long mib = 1024;

    /** For picocli. */
    public ForkHarness() {
    }

    /** The parent's written MiB. */
    static final class Mib extends Ranges.LongRange {
        Mib() {
            super(2, 8192);
        }
    }

    /** Runs the harness: {@code [--repeat N] [--mib M]}. */
    @Override
    public Integer call() throws Exception {
        run();
        return 0;
    }

    private void run() throws Exception {
        PrintStream out = System.out;
        out.printf("offmm fork: %d MiB written, %d interleaved repetitions, 1 thread; %d CPUs%n", mib, repeat,
                Runtime.getRuntime().availableProcessors());
        Path kernel = buildKernelHelper(out);
        long bytes = mib * MIB;
        double[][] fork = new double[3][repeat];
        double[][] storm = new double[3][repeat];
        double[][] close = new double[2][repeat];
        double[][] hot = new double[2][repeat];
        long[] shared = new long[repeat];
        try (PhysicalMemory memory = PhysicalMemory.builder().bytes(3 * bytes + 512 * MIB).build();
             AddressSpace sharing = space(memory, true, bytes);
             AddressSpace copying = space(memory, false, bytes)) {
            warmUp(memory, out);
            for (int r = 0; r < repeat; r++) {
                AddressSpace[] parents = {sharing, copying};
                for (int s = 0; s < 2; s++) {
                    AddressSpace parent = parents[s];
                    settle();
                    long t0 = System.nanoTime();
                    AddressSpace child = parent.fork();
                    fork[s + 1][r] = (System.nanoTime() - t0) / 1e3;
                    if (s == 0) {
                        shared[r] = child.stats().sharedTables();
                    }
                    storm[s + 1][r] = writeAll(parent, bytes, r + 2);
                    long t1 = System.nanoTime();
                    child.close();
                    close[s][r] = (System.nanoTime() - t1) / 1e3;
                    // Hot: forked again right after a fork and close of the same tables, no pause.
                    parent.fork().close();
                    long t2 = System.nanoTime();
                    AddressSpace again = parent.fork();
                    hot[s][r] = (System.nanoTime() - t2) / 1e3;
                    again.close();
                }
                if (kernel != null) {
                    settle();
                    double[] k = runKernel(kernel, mib);
                    fork[0][r] = k[0];
                    storm[0][r] = k[1];
                }
                out.printf("  rep %d: fork us kernel %.0f, shared %.0f, copied %.0f; COW faults/s kernel %.0f, shared %.0f,"
                        + " copied %.0f%n", r + 1, fork[0][r], fork[1][r], fork[2][r], storm[0][r], storm[1][r], storm[2][r]);
            }
            VmStats st = sharing.stats();
            out.printf("%nshared tables in the child: %d (of %d PTE tables); parent after all: cowCopy=%d reuse=%d,"
                    + " unshares %s%n",
                    shared[0], bytes / (2 * MIB), st.faults("cowCopy"), st.faults("reuse"), st.unshares());
        }
        out.printf("%n| measure | kernel | offmm shared tables | offmm copied tables |%n|---|---|---|---|%n");
        out.printf("| fork, us (median, range) | %s | %s | %s |%n", kernel == null ? "skipped" : med(fork[0]), med(fork[1]),
                med(fork[2]));
        out.printf("| COW storm, faults/s | %s | %s | %s |%n", kernel == null ? "skipped" : med(storm[0]), med(storm[1]),
                med(storm[2]));
        out.printf("| fork, tables hot (right after a fork), us | | %s | %s |%n", med(hot[0]), med(hot[1]));
        out.printf("| close of the child, us | | %s | %s |%n", med(close[0]), med(close[1]));
        out.printf("%nratios of medians: copied/shared fork %.1fx (hot %.1fx); shared fork / kernel %s; COW storm"
                        + " shared/kernel %s%n", median(fork[2]) / median(fork[1]), median(hot[1]) / median(hot[0]),
                kernel == null ? "-" : String.format("%.3f", median(fork[1]) / median(fork[0])),
                kernel == null ? "-" : String.format("%.2fx", median(storm[1]) / median(storm[0])));
    }

    /**
     * JIT warm-up, as JMH's warm-up iterations: forks, COW storms and closes of a 64 MiB space of
     * each kind, until the fork and unshare paths are compiled (the measured forks run only a
     * few times each, so without this they would measure the interpreter).
     */
    private static void warmUp(PhysicalMemory memory, PrintStream out) {
        long t0 = System.nanoTime();
        for (boolean share : new boolean[] {true, false}) {
            try (AddressSpace as = space(memory, share, 64 * MIB)) {
                for (int i = 0; i < 40; i++) {
                    AddressSpace child = as.fork();
                    writeAll(as, 64 * MIB, i);
                    child.close();
                }
            }
        }
        out.printf("warm-up: 80 forks of 64 MiB in %d ms%n", (System.nanoTime() - t0) / 1_000_000);
    }

    /**
     * Between measurements, untimed: a collection and a pause, so that neither a GC pause nor the
     * host still tearing down the helper's gigabyte on the other core lands inside a fork.
     */
    private static void settle() {
        System.gc();
        LockSupport.parkNanos(300_000_000L);
    }

    /** A parent holding {@code bytes} written pages, 4 KiB each (no THP: the host side has none either). */
    private static AddressSpace space(PhysicalMemory memory, boolean share, long bytes) {
        VmConfig c = VmConfig.builder().lockMode(LockMode.SPLIT_PTE_PMD).sharePageTables(share).build();
        AddressSpace as = AddressSpace.create(memory, c);
        writeAll(as, as.mmap(0, bytes, Prot.READ | Prot.WRITE, MapFlags.NONE), bytes, 1);
        return as;
    }

    private static long base(AddressSpace as) {
        String line = as.mappings().getFirst();
        return Long.parseUnsignedLong(line.substring(0, line.indexOf('-')), 16);
    }

    /** Writes one long into every page of the parent's mapping; returns the faults per second it took. */
    private static double writeAll(AddressSpace as, long bytes, long value) {
        return writeAll(as, base(as), bytes, value);
    }

    private static double writeAll(AddressSpace as, long a, long bytes, long value) {
        try (Mmu mmu = as.attach()) {
            long t0 = System.nanoTime();
            for (long p = 0; p < bytes; p += PAGE) {
                mmu.putLong(a + p, value);
            }
            return (bytes / PAGE) / ((System.nanoTime() - t0) / 1e9);
        }
    }

    /** Builds the C helper into bench/target if it is missing or older than its source; null without a compiler. */
    private static Path buildKernelHelper(PrintStream out) throws IOException, InterruptedException {
        Path src = Path.of("bench/src/main/c/kernel_fork.c");
        Path bin = Path.of("bench/target/kernel_fork");
        if (!Files.exists(src)) {
            out.println("kernel: skipped (run from the repository root: bench/src/main/c/kernel_fork.c not found)");
            return null;
        }
        if (Files.exists(bin) && Files.getLastModifiedTime(bin).compareTo(Files.getLastModifiedTime(src)) >= 0) {
            return bin;
        }
        try {
            Process p = new ProcessBuilder("cc", "-O2", "-o", bin.toString(), src.toString()).inheritIO().start();
            if (p.waitFor() == 0) {
                return bin;
            }
        } catch (IOException e) {
            // No compiler: the kernel columns are skipped.
        }
        out.println("kernel: skipped (no C compiler `cc` to build bench/src/main/c/kernel_fork.c)");
        return null;
    }

    /** One repetition of the helper: {fork us, COW faults/s}. */
    private static double[] runKernel(Path bin, long mib) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(bin.toString(), Long.toString(mib), "1").redirectErrorStream(true).start();
        List<String> lines = new ArrayList<>();
        try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream()))) {
            for (String l; (l = r.readLine()) != null;) {
                lines.add(l);
            }
        }
        if (p.waitFor() != 0 || lines.isEmpty() || !lines.getLast().startsWith("fork_us")) {
            throw new IllegalStateException("kernel_fork failed: " + lines);
        }
        String[] f = lines.getLast().split(" ");
        return new double[] {Double.parseDouble(f[1]), Double.parseDouble(f[3])};
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    private static String med(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return String.format("%.0f (%.0f-%.0f)", median(v), s[0], s[s.length - 1]);
    }
}
