/**
 * Grace periods: when something retired by an unmap (a batch of pages and tables) may be freed,
 * given the thread contexts that may still translate through what was cleared. The bottom layer
 * of core: it knows nothing of pages, tables or VMAs; what a batch frees is the batch's business.
 * Internal (not exported).
 */
package dev.offmm.core.reclaim;
