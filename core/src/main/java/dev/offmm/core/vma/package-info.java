/** VMAs, mmap_lock and per-VMA locks, and the mmap / munmap / mprotect / madvise operations on them. */
package dev.offmm.core.vma;
