package dev.offmm.core.event;

import jdk.jfr.Category;
import jdk.jfr.DataAmount;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.MemoryAddress;
import jdk.jfr.Name;
import jdk.jfr.Threshold;

/**
 * {@code dev.offmm.SlowMappingCall}: an mmap, munmap, mprotect, madvise or fork that took longer than
 * the threshold (1 ms unless the recording's settings say otherwise).
 */
@Name("dev.offmm.SlowMappingCall")
@Label("offmm Slow Mapping Call")
@Category("offmm")
@Description("An mmap, munmap, mprotect, madvise or fork of an offmm address space that took longer than the threshold")
@Threshold("1 ms")
public final class SlowMappingCallEvent extends Event {
    @Label("Operation")
    String operation;

    @Label("Address Space")
    @Description("The id of the address space")
    long space;

    @Label("Address")
    @Description("The start of the range (for mmap: the mapping returned)")
    @MemoryAddress
    long address;

    @Label("Length")
    @DataAmount
    long length;

    @Label("Argument")
    @Description("The prot bits (mmap, mprotect) or the advice (madvise)")
    int argument;

    private SlowMappingCallEvent() {
    }

    /** A started event, or null if it is not recorded: pass it to {@link #end}. */
    public static SlowMappingCallEvent start() {
        if (!Jfr.on()) {
            return null;
        }
        SlowMappingCallEvent e = new SlowMappingCallEvent();
        if (!e.isEnabled()) {
            return null;
        }
        e.begin();
        return e;
    }

    /** Ends and commits {@code e} (if not null and over the threshold). */
    public static void end(SlowMappingCallEvent e, String operation, long space, long address, long length, int argument) {
        if (e != null && e.shouldCommit()) {
            e.operation = operation;
            e.space = space;
            e.address = address;
            e.length = length;
            e.argument = argument;
            e.commit();
        }
    }
}
