/** Runnable programs built on offmm: a reserve-and-commit arena and a concurrent page cache. */
package dev.offmm.examples;
