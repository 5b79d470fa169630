package dev.offmm.core.event;

import jdk.jfr.Category;
import jdk.jfr.DataAmount;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.MemoryAddress;
import jdk.jfr.Name;

/**
 * {@code dev.offmm.TableUnshare}: PTE tables a fork shared made private to one space again (copied,
 * kept by their last user, or dropped by a munmap), before a fault or a change in their range.
 */
@Name("dev.offmm.TableUnshare")
@Label("offmm Page Table Unshare")
@Category("offmm")
@Description("PTE tables an offmm fork shared were made private to one address space again")
public final class TableUnshareEvent extends Event {
    @Label("Address Space")
    @Description("The id of the address space")
    long space;

    @Label("Start")
    @Description("The first 2 MiB range whose table was unshared")
    @MemoryAddress
    long start;

    @Label("Length")
    @Description("From the first unshared table's range to the end of the last one's")
    @DataAmount
    long length;

    @Label("Drop")
    @Description("Whether tables wholly inside the range were let go of (munmap) rather than copied")
    boolean drop;

    @Label("Tables")
    @Description("Shared tables unshared")
    int tables;

    private TableUnshareEvent() {
    }

    /** A started event, or null if it is not recorded: pass it to {@link #end}. */
    public static TableUnshareEvent start() {
        if (!Jfr.on()) {
            return null;
        }
        TableUnshareEvent e = new TableUnshareEvent();
        if (!e.isEnabled()) {
            return null;
        }
        e.begin();
        return e;
    }

    /** Ends and commits {@code e} (if not null and over the threshold). */
    public static void end(TableUnshareEvent e, long space, long start, long end, boolean drop, int tables) {
        if (e != null && e.shouldCommit()) {
            e.space = space;
            e.start = start;
            e.length = end - start;
            e.drop = drop;
            e.tables = tables;
            e.commit();
        }
    }
}
