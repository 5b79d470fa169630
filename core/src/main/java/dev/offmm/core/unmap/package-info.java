/** Unmapping: the mmu_gather, zapping entries, changing protection and freeing empty page tables. */
package dev.offmm.core.unmap;
