/** offmm address spaces: VMAs, 4-level page tables with split locks, faults and unmapping. */
module dev.offmm.core {
    requires transitive dev.offmm.offheap;
    requires jdk.jfr;
    exports dev.offmm.core;
    exports dev.offmm.core.walk;
}
