package dev.offmm.offheap;

/**
 * The host refused the memory a {@link PhysicalMemory} asked for: reserving its capacity
 * ({@code mmap}: {@code ENOMEM} under {@code vm.overcommit_memory=2}, an address-space limit
 * ({@code ulimit -v}), or a capacity the host cannot map at all), or committing and locking it
 * up front ({@code mlock}: {@code EAGAIN}/{@code ENOMEM} beyond {@code RLIMIT_MEMLOCK}). Nothing
 * was allocated.
 */
public final class HostMemoryException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** The capacity asked for, in bytes. */
    private final long capacity;
    /** The host call that failed. */
    private final String call;
    /** The host's {@code errno}. */
    private final int errno;

    /**
     * The refusal of {@code call} for {@code capacity} bytes with {@code errno}, caused by {@code cause}.
     *
     * @param capacity the bytes asked for
     * @param call the host call that failed: {@code "mmap"} or {@code "mlock"}
     * @param errno the host's {@code errno}
     * @param cause the failure of the host call
     */
    public HostMemoryException(long capacity, String call, int errno, Throwable cause) {
        super("the host refused " + call + " of " + capacity + " bytes (" + (capacity >>> 20)
                + " MiB) for physical memory: errno " + errno + (errno == 12 ? " (ENOMEM)" : ""), cause);
        this.capacity = capacity;
        this.call = call;
        this.errno = errno;
    }

    /** {@return the capacity asked for, in bytes} */
    public long capacity() {
        return capacity;
    }

    /** {@return the host call that failed: {@code "mmap"} or {@code "mlock"}} */
    public String call() {
        return call;
    }

    /** {@return the host's {@code errno}} */
    public int errno() {
        return errno;
    }
}
