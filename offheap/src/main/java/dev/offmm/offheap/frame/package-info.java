/**
 * The frame allocator: a buddy system of orders 0..9 whose free lists are threaded through
 * mem_map, fronted by per-thread caches of order-0 frames refilled and drained in batches
 * (the kernel's per-cpu page lists).
 */
package dev.offmm.offheap.frame;
