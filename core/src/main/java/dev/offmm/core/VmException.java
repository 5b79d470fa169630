package dev.offmm.core;

/** A failed mmap / munmap / mprotect / madvise with an errno-like code. */
public final class VmException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** The error codes. */
    public enum Code {
        /** Out of memory, out of address space, or a range that is not mapped. */
        ENOMEM,
        /** {@code FIXED_NOREPLACE} over an existing mapping. */
        EEXIST,
        /** An address below {@code mmap_min_addr}. */
        EPERM,
        /** Try again: a collapse found a pinned page, or contexts held the range too long. */
        EAGAIN
    }

    /** The errno-like code. */
    private final Code code;

    /**
     * A failure with {@code code} and a message saying what was wrong.
     *
     * @param code the errno-like code
     * @param message what was wrong, with the values involved
     */
    public VmException(Code code, String message) {
        super(code + ": " + message);
        this.code = code;
    }

    /** {@return the errno-like code} */
    public Code code() {
        return code;
    }
}
