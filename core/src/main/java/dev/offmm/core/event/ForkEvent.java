package dev.offmm.core.event;

import jdk.jfr.Category;
import jdk.jfr.DataAmount;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;

/** {@code dev.offmm.Fork}: a fork of an address space, with what it shared and what it copied. */
@Name("dev.offmm.Fork")
@Label("offmm Fork")
@Category("offmm")
@Description("An offmm address space was forked: every page copy-on-write in both")
public final class ForkEvent extends Event {
    @Label("Parent")
    @Description("The id of the forked address space")
    long parent;

    @Label("Child")
    @Description("The id of the new address space")
    long child;

    @Label("VMAs")
    long vmas;

    @Label("Resident")
    @Description("Bytes resident in the child after the fork (shared with the parent)")
    @DataAmount
    long resident;

    @Label("Shared Tables")
    @Description("PTE tables shared with the parent rather than copied")
    long sharedTables;

    @Label("Pinned Copies")
    @Description("Pages copied for the child because they were pinned")
    long pinnedCopies;

    private ForkEvent() {
    }

    /** A started event, or null if it is not recorded: pass it to {@link #end}. */
    public static ForkEvent start() {
        if (!Jfr.on()) {
            return null;
        }
        ForkEvent e = new ForkEvent();
        if (!e.isEnabled()) {
            return null;
        }
        e.begin();
        return e;
    }

    /** Whether {@code e} is to be committed: then the caller reads the counters and calls {@link #end}. */
    public static boolean shouldCommit(ForkEvent e) {
        return e != null && e.shouldCommit();
    }

    /** Commits {@code e}, which {@link #shouldCommit(ForkEvent)} accepted. */
    public static void end(ForkEvent e, long parent, long child, long vmas, long resident, long sharedTables,
                           long pinnedCopies) {
        e.parent = parent;
        e.child = child;
        e.vmas = vmas;
        e.resident = resident;
        e.sharedTables = sharedTables;
        e.pinnedCopies = pinnedCopies;
        e.commit();
    }
}
