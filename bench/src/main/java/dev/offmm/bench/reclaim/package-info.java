/** Reclamation: the harness of the memory-comes-back scenarios, and the JMH benchmark of a context's idle() and pin costs. */
package dev.offmm.bench.reclaim;
