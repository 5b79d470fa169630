/**
 * offmm's "physical" memory: one FFM region handed out as 4 KiB and 2 MiB frames, the
 * mem_map of 64-byte struct-page records, and the page-table lock words.
 *
 * <p>Only the API package is exported to everyone: {@code PhysicalMemory} and
 * {@code LockClass}. What {@code dev.offmm.core} builds on (frames, mem_map, locks, the host's
 * system calls) is exported to it alone.
 */
@SuppressWarnings("module") // dev.offmm.core, the one friend, is compiled after this module
module dev.offmm.offheap {
    exports dev.offmm.offheap;
    exports dev.offmm.offheap.host to dev.offmm.core;
    exports dev.offmm.offheap.page to dev.offmm.core;
    exports dev.offmm.offheap.inject to dev.offmm.core;
    exports dev.offmm.offheap.frame to dev.offmm.core;
    exports dev.offmm.offheap.lock to dev.offmm.core;
    exports dev.offmm.offheap.zone to dev.offmm.core;
}
