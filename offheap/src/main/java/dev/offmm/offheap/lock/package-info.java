/**
 * Page-table lock words. {@link dev.offmm.offheap.lock.PtLocks} is the only code that touches
 * the ptl word of a mem_map record: in inline mode the word is a {@link dev.offmm.offheap.lock.SpinLock};
 * in debug mode ({@code ALLOC_SPLIT_PTLOCKS}) it holds the address of a lock record allocated
 * from the {@link dev.offmm.offheap.lock.LockSlab}.
 *
 * <p>A lock word is taken with a volatile CAS (acquire semantics) and released with a release
 * store: everything written under the lock happens-before the next holder's reads.
 */
package dev.offmm.offheap.lock;
