/**
 * The page-table walker ({@code walk_page_range}): the callbacks users implement
 * ({@link dev.offmm.core.walk.MmWalkOps}, {@link dev.offmm.core.walk.MmWalk}, exported), the walker
 * itself and {@code ptdump}, which {@code AddressSpace} runs under mmap_lock.
 */
package dev.offmm.core.walk;
