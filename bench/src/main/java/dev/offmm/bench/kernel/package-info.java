/** The host kernel baseline, through FFM downcalls to libc. */
package dev.offmm.bench.kernel;
