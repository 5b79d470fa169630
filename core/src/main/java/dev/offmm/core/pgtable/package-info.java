/**
 * Page tables: the entry format ({@link dev.offmm.core.pgtable.Pte}), the layout and the descent
 * ({@link dev.offmm.core.pgtable.Entries}), table frames with their constructors and destructors,
 * the populate protocol, and the lock helper family ({@link dev.offmm.core.pgtable.PtlHelpers}),
 * the one place that decides split versus {@code page_table_lock}. Internal (not exported).
 */
package dev.offmm.core.pgtable;
