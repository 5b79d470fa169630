/**
 * TLB generations and grace periods: when a page or a table freed by an mmu_gather may be reused.
 */
package dev.offmm.core.mmu;
