package dev.offmm.bench.scale;

import dev.offmm.core.LockMode;
import dev.offmm.core.VmConfig;

/**
 * What a run measures: offmm in one lock mode (inline or debug locks), or the host kernel.
 *
 * @param name       as in reports: {@code SINGLE}, {@code SPLIT_PTE_PMD+debug}, {@code kernel}
 * @param lockMode   the offmm lock mode, {@code null} for the kernel
 * @param debugLocks offmm debug locks
 */
public record Target(String name, LockMode lockMode, boolean debugLocks) {
    /** The host kernel. */
    public static final Target KERNEL = new Target("kernel", null, false);

    /** Parses {@code MODE} or {@code MODE+debug} or {@code kernel}. */
    public static Target parse(String spec) {
        if (spec.equals("kernel")) {
            return KERNEL;
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
                    + " (expected SINGLE, SPLIT_PTE, SPLIT_PTE_PMD, optionally +debug, or kernel)", e);
        }
    }

    /** Whether this is the host kernel. */
    public boolean isKernel() {
        return lockMode == null;
    }

    /** The address-space configuration. */
    VmConfig config() {
        return VmConfig.builder().lockMode(lockMode).debugLocks(debugLocks).build();
    }
}
