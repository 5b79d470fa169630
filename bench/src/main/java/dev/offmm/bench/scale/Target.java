package dev.offmm.bench.scale;

import dev.offmm.core.LockMode;
import dev.offmm.core.VmConfig;

/**
 * What a run measures: offmm in one lock mode (inline or debug locks), the host kernel, or the
 * physical floor ({@code zero}: the same threads only zeroing 4 KiB frames of a pool of the same
 * size, the one cost no fault can avoid).
 *
 * @param name       as in reports: {@code SINGLE}, {@code SPLIT_PTE_PMD+debug}, {@code kernel}, {@code zero}
 * @param lockMode   the offmm lock mode, {@code null} for the kernel and the floor
 * @param debugLocks offmm debug locks
 */
public record Target(String name, LockMode lockMode, boolean debugLocks) {
    /** The host kernel. */
    public static final Target KERNEL = new Target("kernel", null, false);
    /** The zeroing floor. */
    public static final Target ZERO = new Target("zero", null, false);

    /** Parses {@code MODE} or {@code MODE+debug}, {@code kernel} or {@code zero}. */
    public static Target parse(String spec) {
        if (spec.equals("kernel")) {
            return KERNEL;
        }
        if (spec.equals("zero")) {
            return ZERO;
        }
        boolean debug = spec.endsWith("+debug");
        String mode = debug ? spec.substring(0, spec.length() - "+debug".length()) : spec;
        try {
            LockMode m = LockMode.valueOf(mode);
            if (m == LockMode.AUTO) {
                throw new IllegalArgumentException("mode=AUTO (name the mode to measure)");
            }
            return new Target(spec, m, debug);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("mode=" + spec
                    + " (expected SINGLE, SPLIT_PTE, SPLIT_PTE_PMD, optionally +debug, kernel or zero)", e);
        }
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
