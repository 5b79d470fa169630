package dev.offmm.core.event;

import jdk.jfr.Category;
import jdk.jfr.DataAmount;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.Period;
import jdk.jfr.StackTrace;

/**
 * {@code dev.offmm.PhysicalMemoryStatistics}: every second (by default), one per physical memory
 * that a live address space uses. The fields are set by the producer in {@code dev.offmm.core}.
 */
@Name("dev.offmm.PhysicalMemoryStatistics")
@Label("offmm Physical Memory Statistics")
@Category("offmm")
@Description("The frames of an offmm physical memory that live address spaces use")
@Period("1 s")
@StackTrace(false)
public final class PhysicalMemoryStatisticsEvent extends Event {
    /** Identity of the memory (its identity hash code). */
    @Label("Memory")
    @Description("The identity hash code of the PhysicalMemory")
    public int memory;

    /** The memory's size. */
    @Label("Size")
    @DataAmount
    public long size;

    /** Bytes the host has committed. */
    @Label("Committed")
    @DataAmount
    public long committed;

    /** 4 KiB frames an allocation could get now (free, or in the frame caches). */
    @Label("Free Frames")
    public long freeFrames;

    /** 4 KiB frames in use. */
    @Label("Used Frames")
    public long usedFrames;

    /** Live address spaces on it. */
    @Label("Address Spaces")
    public int spaces;
}
