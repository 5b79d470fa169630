package dev.offmm.core.event;

import jdk.jfr.Category;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.MemoryAddress;
import jdk.jfr.Name;

/** {@code dev.offmm.HugeSplit}: a transparent huge page split into a PTE table ({@code __split_huge_pmd}). */
@Name("dev.offmm.HugeSplit")
@Label("offmm THP Split")
@Category("offmm")
@Description("A 2 MiB transparent huge page of an offmm address space was split into 512 4 KiB entries")
public final class HugeSplitEvent extends Event {
    @Label("Cause")
    @Description("zap (partial munmap, mprotect, DONTNEED), fork or probe")
    String cause;

    @Label("Address Space")
    @Description("The id of the address space")
    long space;

    @Label("Address")
    @Description("The start of the 2 MiB page")
    @MemoryAddress
    long address;

    private HugeSplitEvent() {
    }

    /** Records a split of the huge page at {@code address}, if enabled. */
    public static void emit(String cause, long space, long address) {
        if (!Jfr.on()) {
            return;
        }
        HugeSplitEvent e = new HugeSplitEvent();
        if (e.shouldCommit()) {
            e.cause = cause;
            e.space = space;
            e.address = address;
            e.commit();
        }
    }
}
