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
    private final long bytesCopied;

    /** A failed fault of {@code kind} at {@code address}. */
    public FaultException(Kind kind, long address, boolean write) {
        this(kind, address, write, 0);
    }

    /**
     * A failed fault of {@code kind} at {@code address} that stopped a bulk copy after
     * {@code bytesCopied} bytes.
     */
    public FaultException(Kind kind, long address, boolean write, long bytesCopied) {
        super(kind + " on " + (write ? "write" : "read") + " at 0x" + Long.toHexString(address)
                + (bytesCopied > 0 ? " after " + bytesCopied + " bytes copied" : ""));
        this.kind = kind;
        this.address = address;
        this.bytesCopied = bytesCopied;
    }

    /** Why it failed. */
    public Kind kind() {
        return kind;
    }

    /** The faulting address: the first byte the access could not reach. */
    public long address() {
        return address;
    }

    /**
     * For a bulk copy ({@code read} / {@code write} of many bytes): how many bytes it copied
     * before the fault, which is every byte before {@link #address()}. 0 for other accesses.
     */
    public long bytesCopied() {
        return bytesCopied;
    }
}
