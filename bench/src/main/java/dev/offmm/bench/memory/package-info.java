/** {@code offmm memory}: what physical memory costs the host (create, give-back, re-touch). */
package dev.offmm.bench.memory;
