package dev.offmm.bench.scale;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** The host kernel's THP fault counters ({@code thp_fault_alloc}, {@code thp_fault_fallback} in /proc/vmstat). */
final class KernelThp {
    private KernelThp() {
    }

    /** {thp_fault_alloc, thp_fault_fallback}, or zeros where /proc/vmstat cannot be read. */
    static long[] read() {
        long[] v = new long[2];
        try {
            for (String line : Files.readAllLines(Path.of("/proc/vmstat"))) {
                if (line.startsWith("thp_fault_alloc ")) {
                    v[0] = Long.parseLong(line.substring(16).trim());
                } else if (line.startsWith("thp_fault_fallback ")) {
                    v[1] = Long.parseLong(line.substring(19).trim());
                }
            }
        } catch (IOException | NumberFormatException e) {
            return new long[2];
        }
        return v;
    }
}
