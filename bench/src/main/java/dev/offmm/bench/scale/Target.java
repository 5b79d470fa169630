package dev.offmm.bench.scale;

import dev.offmm.core.LockMode;
import dev.offmm.core.VmConfig;
import dev.offmm.offheap.PhysicalMemory;

import java.time.Duration;

/**
 * What a run measures: offmm in one lock mode (inline or debug locks), the host kernel, or the
 * physical floor ({@code zero}: the same threads only zeroing 4 KiB frames of a pool of the same
 * size, the one cost no fault can avoid).
 *
 * <p>The physical memory of an offmm target is the default one (reported after 2 s) unless a
 * suffix says otherwise: {@code +noreport} (free page reporting off), {@code +hosthuge} (the
 * frame region advised {@code MADV_HUGEPAGE}), {@code +cold} (free blocks reported at once, so a
 * page recycled through the buddy is a first touch for the host too: the cost of warm-up).
 *
 * @param name       as in reports: {@code SINGLE}, {@code SPLIT_PTE_PMD+debug}, {@code kernel}, {@code zero}
 * @param lockMode   the offmm lock mode, {@code null} for the kernel and the floor
 * @param debugLocks offmm debug locks
 * @param memory     how the physical memory is backed: {@code ""}, {@code noreport}, {@code hosthuge}, {@code cold}
 */
public record Target(String name, LockMode lockMode, boolean debugLocks, String memory) {
    /** The host kernel. */
    public static final Target KERNEL = new Target("kernel", null, false, "");
    /** The zeroing floor. */
    public static final Target ZERO = new Target("zero", null, false, "");

    /** Parses {@code MODE[+debug][+noreport|+hosthuge|+cold]}, {@code kernel} or {@code zero}. */
    public static Target parse(String spec) {
        if (spec.equals("kernel")) {
            return KERNEL;
        }
        if (spec.equals("zero")) {
            return ZERO;
        }
        String[] parts = spec.split("\\+");
        boolean debug = false;
        String memory = "";
        for (int i = 1; i < parts.length; i++) {
            switch (parts[i]) {
                case "debug" -> debug = true;
                case "noreport", "hosthuge", "cold" -> {
                    if (!memory.isEmpty()) {
                        throw new IllegalArgumentException("mode=" + spec + " (at most one of +noreport, +hosthuge, +cold)");
                    }
                    memory = parts[i];
                }
                default -> throw new IllegalArgumentException("mode=" + spec
                        + " (unknown suffix +" + parts[i] + "; expected +debug, +noreport, +hosthuge or +cold)");
            }
        }
        try {
            LockMode m = LockMode.valueOf(parts[0]);
            if (m == LockMode.AUTO) {
                throw new IllegalArgumentException("mode=AUTO (name the mode to measure)");
            }
            return new Target(spec, m, debug, memory);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("mode=" + spec
                    + " (expected SINGLE, SPLIT_PTE, SPLIT_PTE_PMD, optionally +debug and one of +noreport, +hosthuge, +cold;"
                    + " kernel or zero)", e);
        }
    }

    /** Physical memory of {@code bytes} backed as this target says. */
    PhysicalMemory physicalMemory(long bytes) {
        PhysicalMemory.Builder b = PhysicalMemory.builder().bytes(bytes);
        return switch (memory) {
            case "noreport" -> b.reporting(false).build();
            case "hosthuge" -> b.hostHugePages(true).build();
            case "cold" -> b.reportFreeAfter(Duration.ZERO).build();
            default -> b.build();
        };
    }

    /** Whether this is the host kernel. */
    public boolean isKernel() {
        return this.equals(KERNEL);
    }

    /** Whether this is the zeroing floor. */
    public boolean isZero() {
        return this.equals(ZERO);
    }

    /** Whether this runs offmm. */
    public boolean isOffmm() {
        return lockMode != null;
    }

    /** The address-space configuration. */
    VmConfig config() {
        return VmConfig.builder().lockMode(lockMode).debugLocks(debugLocks).build();
    }
}
