/**
 * A reserve-and-commit bump arena on offmm ({@link dev.offmm.examples.arena.ReserveCommitArena}) and
 * a harness that prints resident memory over allocate / touch / reset cycles beside FFM's arenas
 * ({@link dev.offmm.examples.arena.ArenaRssBench}).
 */
package dev.offmm.examples.arena;
