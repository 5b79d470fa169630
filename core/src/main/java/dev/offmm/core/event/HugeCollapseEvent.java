package dev.offmm.core.event;

import jdk.jfr.Category;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.MemoryAddress;
import jdk.jfr.Name;

/** {@code dev.offmm.HugeCollapse}: a PTE table collapsed into a transparent huge page ({@code MADV_COLLAPSE}). */
@Name("dev.offmm.HugeCollapse")
@Label("offmm THP Collapse")
@Category("offmm")
@Description("512 4 KiB pages of an offmm address space were copied into one 2 MiB transparent huge page")
public final class HugeCollapseEvent extends Event {
    @Label("Address Space")
    @Description("The id of the address space")
    long space;

    @Label("Address")
    @Description("The start of the 2 MiB page")
    @MemoryAddress
    long address;

    private HugeCollapseEvent() {
    }

    /** A started event, or null if it is not recorded: pass it to {@link #end}. */
    public static HugeCollapseEvent start() {
        if (!Jfr.on()) {
            return null;
        }
        HugeCollapseEvent e = new HugeCollapseEvent();
        if (!e.isEnabled()) {
            return null;
        }
        e.begin();
        return e;
    }

    /** Ends and commits {@code e} (if not null and over the threshold). */
    public static void end(HugeCollapseEvent e, long space, long address) {
        if (e != null && e.shouldCommit()) {
            e.space = space;
            e.address = address;
            e.commit();
        }
    }
}
