/** {@code offmm fork}: fork with shared and with copied page tables beside the host kernel's fork, and the COW storm. */
package dev.offmm.bench.fork;
