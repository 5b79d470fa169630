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

    /** Why it failed. */
    private final Kind kind;
    /** The first byte the access could not reach. */
    private final long address;
    /** Bytes a bulk copy copied before the fault. */
    private final long bytesCopied;

    /**
     * A failed fault of {@code kind} at {@code address}.
     *
     * @param kind why it failed
     * @param address the faulting address
     * @param write whether the access was a write
     */
    public FaultException(Kind kind, long address, boolean write) {
        this(kind, address, write, 0);
    }

    /**
     * A failed fault of {@code kind} at {@code address} that stopped a bulk copy after
     * {@code bytesCopied} bytes.
     *
     * @param kind why it failed
     * @param address the faulting address: the first byte the copy could not reach
     * @param write whether the access was a write
     * @param bytesCopied the bytes copied before {@code address}
     */
    public FaultException(Kind kind, long address, boolean write, long bytesCopied) {
        super(kind + " on " + (write ? "write" : "read") + " at 0x" + Long.toHexString(address)
                + (bytesCopied > 0 ? " after " + bytesCopied + " bytes copied" : ""));
        this.kind = kind;
        this.address = address;
        this.bytesCopied = bytesCopied;
    }

    /** {@return why it failed} */
    public Kind kind() {
        return kind;
    }

    /** {@return the faulting address: the first byte the access could not reach} */
    public long address() {
        return address;
    }

    /**
     * {@return how many bytes a bulk copy copied before the fault: for {@code read} / {@code write}
     * of many bytes, every byte before {@link #address()}; 0 for other accesses}
     */
    public long bytesCopied() {
        return bytesCopied;
    }
}
