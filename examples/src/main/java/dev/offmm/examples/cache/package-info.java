/**
 * An off-heap cache on offmm ({@link dev.offmm.examples.cache.OffHeapCache}, with its
 * {@link dev.offmm.examples.cache.CacheStats}) and the harness that measures it against
 * ConcurrentHashMap and Caffeine ({@link dev.offmm.examples.cache.CacheBench},
 * {@code ./offmm example cache-bench --help}).
 */
package dev.offmm.examples.cache;
