package dev.offmm.bench.scale;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.List;

/**
 * Where and when a run ran, for plot titles: CPUs the JVM sees ({@code nproc}), the CPU model
 * ({@code /proc/cpuinfo}), the kernel release ({@code uname -r}) and the start of the run.
 *
 * @param cpus     available processors
 * @param cpuModel the first {@code model name} of {@code /proc/cpuinfo}, or the architecture
 * @param kernel   the kernel release
 * @param started  when the run started
 */
record Machine(int cpus, String cpuModel, String kernel, Instant started) {
    private static final DateTimeFormatter WHEN = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm 'UTC'")
            .withZone(ZoneOffset.UTC);

    /** This machine, now. */
    static Machine current() {
        return new Machine(Runtime.getRuntime().availableProcessors(), cpuModel(Path.of("/proc/cpuinfo")),
                kernelRelease(), Instant.now());
    }

    static String cpuModel(Path cpuinfo) {
        try {
            List<String> lines = Files.readAllLines(cpuinfo);
            for (String l : lines) {
                // x86: "model name"; arm64 has none, but some kernels give "Model" or "Hardware".
                if (l.startsWith("model name") || l.startsWith("Model") || l.startsWith("Hardware")) {
                    int colon = l.indexOf(':');
                    if (colon > 0 && !l.substring(colon + 1).isBlank()) {
                        return l.substring(colon + 1).strip().replaceAll("\\s+", " ");
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            // Not Linux, or no permission: the architecture below.
        }
        return System.getProperty("os.arch");
    }

    /** {@code uname -r}: the JDK's os.version is the kernel release on Linux. */
    private static String kernelRelease() {
        try {
            return Files.readString(Path.of("/proc/sys/kernel/osrelease")).strip();
        } catch (IOException | RuntimeException e) {
            return System.getProperty("os.version");
        }
    }

    /** {@code 2 CPUs, AMD EPYC 7B13, Linux 6.8.0-1019-gcp, 2026-12-02 06:10 UTC}. */
    String describe() {
        return cpus + (cpus == 1 ? " CPU, " : " CPUs, ") + cpuModel + ", " + System.getProperty("os.name") + " " + kernel
                + ", " + WHEN.format(started);
    }
}
