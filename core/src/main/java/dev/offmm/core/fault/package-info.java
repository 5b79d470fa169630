/** The fault handler: anonymous faults, the zero page, write-protect (COW and reuse). */
package dev.offmm.core.fault;
