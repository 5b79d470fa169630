/**
 * offmm's "physical" memory: one FFM region handed out as 4 KiB and 2 MiB frames, the
 * mem_map of 64-byte struct-page records, and the page-table lock words.
 */
module dev.offmm.offheap {
    exports dev.offmm.offheap;
    exports dev.offmm.offheap.frame;
    exports dev.offmm.offheap.lock;
    exports dev.offmm.offheap.inject;
    exports dev.offmm.offheap.page;
    exports dev.offmm.offheap.host;
}
