/**
 * The host kernel as offmm's "hardware": system calls made through the FFM linker. The bottom of
 * offheap, depending on nothing else in offmm. Internal (exported to {@code dev.offmm.core} only).
 */
package dev.offmm.offheap.host;
