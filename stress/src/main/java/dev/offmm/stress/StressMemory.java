package dev.offmm.stress;

import dev.offmm.core.LockMode;
import dev.offmm.core.VmConfig;
import dev.offmm.offheap.PhysicalMemory;

/**
 * The physical memory of one forked test VM, shared by every state of the test it runs. jcstress
 * keeps up to a few thousand states alive at once; each takes a handful of frames and gives them
 * back in its arbiter.
 */
final class StressMemory {
    /** 512 MiB: 131072 frames, for up to 40 x 256 live states of a few frames each. */
    static final PhysicalMemory MEMORY = PhysicalMemory.create(512L << 20);
    /**
     * 4 GiB for the 2 MiB tests, 2048 huge frames: reserved without commit (the host backs only
     * what is touched), so live states that each hold a huge page cost only their own pages.
     */
    static final PhysicalMemory HUGE_MEMORY = PhysicalMemory.create(4L << 30);
    /**
     * 1 GiB for {@link ThpVsSmallFaultControl}, whose broken variant leaks a table and a page each
     * time it is caught: once this runs out, its THP faults fall back and the leaking stops.
     */
    static final PhysicalMemory CONTROL_MEMORY = PhysicalMemory.create(1L << 30);
    /** Split PTE and PMD locks with inline lock words. */
    static final VmConfig SPLIT = VmConfig.builder().lockMode(LockMode.SPLIT_PTE_PMD).build();
    /** Split PTE and PMD locks with allocated debug locks. */
    static final VmConfig SPLIT_DEBUG = VmConfig.builder().lockMode(LockMode.SPLIT_PTE_PMD).debugLocks(true).build();

    private StressMemory() {
    }
}
