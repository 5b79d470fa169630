/** JMH benchmark of the reserve-and-commit arena against FFM's arenas. */
package dev.offmm.bench.arena;
