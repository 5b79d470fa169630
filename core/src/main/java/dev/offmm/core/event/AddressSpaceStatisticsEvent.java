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
 * {@code dev.offmm.AddressSpaceStatistics}: every second (by default), one per live address space,
 * its counters ({@code VmStats}). The fields are set by the producer in {@code dev.offmm.core}.
 */
@Name("dev.offmm.AddressSpaceStatistics")
@Label("offmm Address Space Statistics")
@Category("offmm")
@Description("The counters of a live offmm address space")
@Period("1 s")
@StackTrace(false)
public final class AddressSpaceStatisticsEvent extends Event {
    /** The id of the address space. */
    @Label("Address Space")
    @Description("The id of the address space")
    public long space;

    /** Resident bytes. */
    @Label("Resident")
    @DataAmount
    public long resident;

    /** Resident data pages. */
    @Label("Resident Pages")
    public long rssPages;

    /** Bytes of PTE, PMD and PUD tables. */
    @Label("Page Tables")
    @DataAmount
    public long pageTables;

    /** VMAs. */
    @Label("VMAs")
    public long vmas;

    /** Faults resolved or failed, ever. */
    @Label("Faults")
    public long faults;

    /** Faults that failed for want of memory, ever. */
    @Label("OOM Faults")
    public long oomFaults;

    /** 2 MiB entries mapped now. */
    @Label("Huge Pages")
    public long hugePages;

    /** THP splits, ever. */
    @Label("THP Splits")
    public long thpSplits;

    /** THP collapses, ever. */
    @Label("THP Collapses")
    public long thpCollapses;

    /** PTE tables shared with another space now. */
    @Label("Shared Tables")
    public long sharedTables;

    /** Forks, ever. */
    @Label("Forks")
    public long forks;

    /** TLB generation bumps, ever. */
    @Label("TLB Flushes")
    public long tlbFlushes;

    /** Frames waiting for a grace period. */
    @Label("Pending Free Frames")
    public long pendingFreeFrames;

    /** Grace periods completed (unmap batches released), ever. */
    @Label("Grace Periods")
    public long gracePeriods;
}
