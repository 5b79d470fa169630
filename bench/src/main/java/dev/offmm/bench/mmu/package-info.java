/** JMH benchmarks of accesses through a per-thread Mmu. */
package dev.offmm.bench.mmu;
