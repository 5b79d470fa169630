/**
 * 2 MiB pages: the THP and hugetlb faults ({@link dev.offmm.core.huge.HugeFault}) and the huge
 * entry itself ({@link dev.offmm.core.huge.HugePmd}: its stores under the lock
 * {@code hugePteLock} names, and its split into a PTE table). Between the page tables and the
 * leaf operations that split entries; the collapse, which also frees pages, is in {@code ops}.
 * Internal (not exported).
 */
package dev.offmm.core.huge;
