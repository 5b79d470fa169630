/** JMH benchmarks of page faults. */
package dev.offmm.bench.fault;
