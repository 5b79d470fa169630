package dev.offmm.offheap.host;

/** A host call that failed: its name and the {@code errno} it set. */
public final class HostCallException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final String call;
    private final int errno;

    /** The failure of {@code call} with {@code errno}. */
    public HostCallException(String call, int errno) {
        super(call + " failed: errno " + errno + (errno == HostMemory.ENOMEM ? " (ENOMEM)" : ""));
        this.call = call;
        this.errno = errno;
    }

    /** The call that failed ({@code "mmap"}, {@code "mlock"}). */
    public String call() {
        return call;
    }

    /** The host's {@code errno}. */
    public int errno() {
        return errno;
    }
}
