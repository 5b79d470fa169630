package dev.offmm.core.event;

import dev.offmm.offheap.PhysicalMemory;
import jdk.jfr.Category;
import jdk.jfr.DataAmount;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.MemoryAddress;
import jdk.jfr.Name;

/**
 * {@code dev.offmm.Oom}: a fault, fork, collapse or unshare that failed for want of a frame
 * ({@code FaultException} OOM, {@code VmException} ENOMEM), with the memory's state at that moment.
 */
@Name("dev.offmm.Oom")
@Label("offmm Out of Memory")
@Category("offmm")
@Description("A fault or mapping operation of an offmm address space failed for want of a free frame")
public final class OomEvent extends Event {
    @Label("Operation")
    @Description("fault, unshare, fork, collapse or pgd")
    String operation;

    @Label("Address Space")
    @Description("The id of the address space")
    long space;

    @Label("Address")
    @Description("The faulting address, the 2 MiB page a collapse was for, or 0 (fork, unshare)")
    @MemoryAddress
    long address;

    @Label("Write")
    boolean write;

    @Label("Free Frames")
    @Description("4 KiB frames an allocation could get now (free, or in the frame caches)")
    long freeFrames;

    @Label("Committed")
    @Description("Bytes of the physical memory the host has committed")
    @DataAmount
    long committed;

    @Label("Memory Size")
    @DataAmount
    long memorySize;

    private OomEvent() {
    }

    /** Records an OOM of {@code operation} at {@code address} in space {@code space} of {@code memory}, if enabled. */
    public static void emit(String operation, long space, long address, boolean write, PhysicalMemory memory) {
        if (!Jfr.on()) {
            return;
        }
        OomEvent e = new OomEvent();
        if (e.shouldCommit()) {
            e.operation = operation;
            e.space = space;
            e.address = address;
            e.write = write;
            try {
                e.freeFrames = memory.freeFrameCount();
                e.committed = memory.committedBytes();
            } catch (IllegalStateException closed) {
                // Closed meanwhile (its getters check): the event says so rather than failing the caller.
                e.freeFrames = -1;
                e.committed = -1;
            }
            e.memorySize = memory.bytes();
            e.commit();
        }
    }
}
