/**
 * Test support: an entry point for tests and tools outside {@code dev.offmm.core} (the jcstress
 * module) that need to drive one protocol of an address space directly. Not exported, not API:
 * it sits above every other layer and reaches the internals the way {@code AddressSpace} does,
 * through {@code MmServices}.
 */
package dev.offmm.core.support;
