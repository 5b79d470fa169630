/**
 * Faults: the entry with its VMA-lock policy ({@link dev.offmm.core.fault.FaultEntry}) and the
 * handler for anonymous memory, the zero page and write-protect (COW and reuse). Internal (not
 * exported).
 */
package dev.offmm.core.fault;
