/** JMH evidence that counting on the fault path is not the bottleneck. */
package dev.offmm.bench.counters;
