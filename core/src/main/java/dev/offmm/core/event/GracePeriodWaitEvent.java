package dev.offmm.core.event;

import jdk.jfr.Category;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;

/**
 * {@code dev.offmm.GracePeriodWait}: a thread waited for other contexts' accesses to move past a
 * TLB generation ({@code synchronize_rcu}): an unshare, a fork's shootdown, a collapse, a close.
 */
@Name("dev.offmm.GracePeriodWait")
@Label("offmm Grace Period Wait")
@Category("offmm")
@Description("A thread waited for the accesses in progress of an offmm address space to move past a TLB generation")
public final class GracePeriodWaitEvent extends Event {
    @Label("Cause")
    @Description("shootdown (unshare, fork), collapse or close")
    String cause;

    @Label("Address Space")
    @Description("The id of the address space")
    long space;

    @Label("Generation")
    @Description("The TLB generation waited for (-1 for close, which waits for every pending batch)")
    long generation;

    @Label("Completed")
    @Description("False if the wait timed out")
    boolean completed;

    private GracePeriodWaitEvent() {
    }

    /** A started event, or null if it is not recorded: pass it to {@link #end}. */
    public static GracePeriodWaitEvent start() {
        if (!Jfr.on()) {
            return null;
        }
        GracePeriodWaitEvent e = new GracePeriodWaitEvent();
        if (!e.isEnabled()) {
            return null;
        }
        e.begin();
        return e;
    }

    /** Ends and commits {@code e} (if not null and over the threshold). */
    public static void end(GracePeriodWaitEvent e, String cause, long space, long generation, boolean completed) {
        if (e != null && e.shouldCommit()) {
            e.cause = cause;
            e.space = space;
            e.generation = generation;
            e.completed = completed;
            e.commit();
        }
    }
}
