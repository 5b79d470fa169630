/**
 * The state of an address space ({@link dev.offmm.core.mm.Mm}, the kernel's {@code mm_struct}) and
 * its counters. Data only; internal (not exported).
 */
package dev.offmm.core.mm;
