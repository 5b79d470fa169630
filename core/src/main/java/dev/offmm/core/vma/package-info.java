/**
 * VMAs: the copy-on-write VMA array with its lockless lookup, {@code mmap_lock}, and the per-VMA
 * read locks faults take. Nothing else: the operations that change VMAs live in
 * {@code dev.offmm.core.ops}. Internal (not exported).
 */
package dev.offmm.core.vma;
