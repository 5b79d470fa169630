/**
 * Unmapping: the mmu_gather, zapping leaves, changing protection and freeing empty page tables.
 * Internal (not exported).
 */
package dev.offmm.core.unmap;
