/**
 * JDK Flight Recorder events of offmm ({@code dev.offmm.*}, category "offmm"): an OOM, a grace
 * period waited for, a THP split or collapse, a page table unshared, a fork, a mapping call slower
 * than a threshold, and the periodic statistics of every live address space and its memory. The
 * bottom layer of core: every other layer may emit, and this one imports nothing of core.
 *
 * <p>Cost when no recording runs: each emitting site reads one static volatile boolean
 * ({@link dev.offmm.core.event.Jfr#on()}, true only while a recording runs) and allocates
 * nothing. No event is built on the fault or access paths, the OOM of a fault (already slow)
 * aside. Internal (not exported).
 */
package dev.offmm.core.event;
