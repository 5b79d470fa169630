/**
 * The operations on an address space's VMAs (mmap, munmap, mprotect, madvise) and the one place
 * that builds an address space's services ({@link dev.offmm.core.ops.MmServices}). Internal (not
 * exported).
 */
package dev.offmm.core.ops;
