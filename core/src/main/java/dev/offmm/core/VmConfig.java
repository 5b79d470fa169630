package dev.offmm.core;

import dev.offmm.offheap.Checks;

/**
 * Configuration of an address space. Immutable; build with {@link #builder()}.
 *
 * @param lockMode        the lock mode ({@link LockMode#AUTO} resolves with {@code nrCpus})
 * @param debugLocks      split locks are allocated debug locks ({@code ALLOC_SPLIT_PTLOCKS})
 * @param nrCpus          the CPU count {@link LockMode#AUTO} compares with {@code splitPtlockCpus}
 * @param splitPtlockCpus the CPU count from which AUTO splits (default 2: split on any machine with more than
 *                        one CPU; see {@link LockMode#AUTO})
 * @param maxMapCount     the most VMAs an address space may have (default 65530, like vm.max_map_count)
 * @param thp             when write faults map transparent huge pages (default {@link Thp#MADVISE})
 * @param sharePageTables whether {@link AddressSpace#fork()} shares the PTE tables of 2 MiB ranges that lie
 *                        wholly inside one VMA instead of copying them (default true; needs split PTE locks,
 *                        so in {@link LockMode#SINGLE} fork always copies)
 */
public record VmConfig(LockMode lockMode, boolean debugLocks, int nrCpus, int splitPtlockCpus, int maxMapCount,
                       Thp thp, boolean sharePageTables) {

    /** Validates. */
    public VmConfig {
        if (lockMode == null) {
            throw new IllegalArgumentException("lockMode=null (expected a LockMode)");
        }
        Checks.inRange("nrCpus", nrCpus, 1, 1 << 16);
        Checks.inRange("splitPtlockCpus", splitPtlockCpus, 1, 1 << 16);
        Checks.inRange("maxMapCount", maxMapCount, 1, Integer.MAX_VALUE);
        if (thp == null) {
            throw new IllegalArgumentException("thp=null (expected NEVER, MADVISE or ALWAYS)");
        }
    }

    /** {@return the defaults: AUTO, inline locks, this machine's CPU count} */
    public static VmConfig defaults() {
        return builder().build();
    }

    /** {@return a builder with the defaults} */
    public static Builder builder() {
        return new Builder();
    }

    /** {@return the lock mode after resolving {@link LockMode#AUTO}} */
    public LockMode effectiveLockMode() {
        if (lockMode != LockMode.AUTO) {
            return lockMode;
        }
        return nrCpus >= splitPtlockCpus ? LockMode.SPLIT_PTE_PMD : LockMode.SINGLE;
    }

    /** Builder of {@link VmConfig}. */
    public static final class Builder {
        private LockMode lockMode = LockMode.AUTO;
        private boolean debugLocks;
        private int nrCpus = Runtime.getRuntime().availableProcessors();
        private int splitPtlockCpus = 2;
        private int maxMapCount = 65530;
        private Thp thp = Thp.MADVISE;
        private boolean sharePageTables = true;

        private Builder() {
        }

        /**
         * The lock mode; default {@link LockMode#AUTO}.
         *
         * @param value the lock mode
         * @return this builder
         */
        public Builder lockMode(LockMode value) {
            this.lockMode = value;
            return this;
        }

        /**
         * Allocated debug locks (with statistics) instead of inline lock words; default off.
         *
         * @param value whether to allocate each split lock
         * @return this builder
         */
        public Builder debugLocks(boolean value) {
            this.debugLocks = value;
            return this;
        }

        /**
         * The CPU count {@link LockMode#AUTO} uses; default this machine's.
         *
         * @param value the number of CPUs
         * @return this builder
         */
        public Builder nrCpus(int value) {
            this.nrCpus = value;
            return this;
        }

        /**
         * The split-lock threshold {@link LockMode#AUTO} uses; default 2.
         *
         * @param value the CPU count from which AUTO splits the locks
         * @return this builder
         */
        public Builder splitPtlockCpus(int value) {
            this.splitPtlockCpus = value;
            return this;
        }

        /**
         * The VMA limit; default 65530, as {@code vm.max_map_count}.
         *
         * @param value the most VMAs an address space may have
         * @return this builder
         */
        public Builder maxMapCount(int value) {
            this.maxMapCount = value;
            return this;
        }

        /**
         * The transparent-huge-page policy; default {@link Thp#MADVISE}.
         *
         * @param value the policy
         * @return this builder
         */
        public Builder thp(Thp value) {
            this.thp = value;
            return this;
        }

        /**
         * Whether fork shares PTE tables (see {@link VmConfig#sharePageTables()}); default on.
         *
         * @param value whether to share
         * @return this builder
         */
        public Builder sharePageTables(boolean value) {
            this.sharePageTables = value;
            return this;
        }

        /**
         * Builds and validates.
         *
         * @return the configuration
         * @throws IllegalArgumentException if a value is out of range, naming it
         */
        public VmConfig build() {
            return new VmConfig(lockMode, debugLocks, nrCpus, splitPtlockCpus, maxMapCount, thp, sharePageTables);
        }
    }
}
