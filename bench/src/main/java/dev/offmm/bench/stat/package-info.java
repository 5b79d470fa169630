/**
 * Live vmstat-style counters: exported by a running harness into an Agrona CountersManager over a
 * memory-mapped file, and watched by {@code offmm stat} from another process.
 */
package dev.offmm.bench.stat;
