/** JMH benchmarks of the physical layer: frame allocation and page-table locks, against FFM baselines. */
package dev.offmm.bench.offheap;
