/**
 * Struct pages: the {@link dev.offmm.offheap.page.MemMap} layout (one 64-byte record per frame)
 * and the frame geometry {@link dev.offmm.offheap.page.PageSize}. The bottom of offheap: it depends
 * on nothing else in offmm. Accessor names carry their memory ordering, as described in
 * {@link dev.offmm.offheap}.
 */
package dev.offmm.offheap.page;
