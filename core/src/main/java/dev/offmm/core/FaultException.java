package dev.offmm.core;

/** A fault that could not be resolved: the equivalent of SIGSEGV or the OOM killer. */
public final class FaultException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** Why a fault failed. */
    public enum Kind {
        /** No mapping at the address ({@code SEGV_MAPERR}). */
        MAPERR,
        /** The mapping does not allow the access ({@code SEGV_ACCERR}). */
        ACCERR,
        /** No memory for a page or a table ({@code VM_FAULT_OOM}). */
        OOM
    }

    private final Kind kind;
    private final long address;

    /** A failed fault of {@code kind} at {@code address}. */
    public FaultException(Kind kind, long address, boolean write) {
        super(kind + " on " + (write ? "write" : "read") + " at 0x" + Long.toHexString(address));
        this.kind = kind;
        this.address = address;
    }

    /** Why it failed. */
    public Kind kind() {
        return kind;
    }

    /** The faulting address. */
    public long address() {
        return address;
    }
}
