/**
 * The fault-scalability harness: will-it-scale style loops per thread, swept over threads and
 * lock modes, with the host kernel measured side by side in the same run.
 */
package dev.offmm.bench.scale;
