/**
 * Physical memory: {@link dev.offmm.offheap.PhysicalMemory}, built on the packages below it.
 *
 * <h2>Layers</h2>
 * {@code page} (the mem_map layout and the frame geometry) &lt;- {@code inject} (fail points) &lt;-
 * {@code frame} (buddy allocator, per-thread caches) &lt;- {@code lock} (ptl words, debug-lock slab)
 * &lt;- this package. Each package imports only packages to its left; no package cycle.
 *
 * <h2>Memory-ordering convention</h2>
 * Every accessor of a word that another thread may touch names its ordering in its name, as
 * in Agrona and {@link java.lang.invoke.VarHandle}:
 * <ul>
 *   <li>{@code ...Plain}: plain load or store; only for words owned by the calling thread or
 *       guarded by a lock the caller holds;</li>
 *   <li>{@code ...Opaque}: single-copy atomic, no ordering; statistics read racily;</li>
 *   <li>{@code ...Acquire} / {@code ...Release}: a load-acquire paired with a store-release
 *       (the publisher initialises, then releases; the reader acquires, then reads);</li>
 *   <li>{@code cas...} / {@code getAndAdd...} / {@code addAndGet...}: volatile read-modify-write.</li>
 * </ul>
 * Each release names its matching acquire in a comment, and the other way around.
 */
package dev.offmm.offheap;
