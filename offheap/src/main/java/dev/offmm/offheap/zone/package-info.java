/**
 * The inside of a physical memory ({@link dev.offmm.offheap.zone.Zone}): the one place that
 * holds the region, mem_map, allocator and lock slab together. Internal: exported to
 * {@code dev.offmm.core} only.
 */
package dev.offmm.offheap.zone;
