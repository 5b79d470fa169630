package dev.offmm.core;

/** Protection bits of {@code mmap} and {@code mprotect}, as in mmap(2). */
public final class Prot {
    /** No access. */
    public static final int NONE = 0;
    /** Readable. */
    public static final int READ = 1;
    /** Writable (implies readable, as on x86). */
    public static final int WRITE = 2;
    /** Every valid bit. */
    public static final int ALL = READ | WRITE;

    private Prot() {
    }

    /**
     * Whether {@code prot} allows reads: {@code READ} or {@code WRITE}.
     *
     * @param prot {@link Prot} bits
     * @return whether a read is allowed
     */
    public static boolean readable(int prot) {
        return (prot & (READ | WRITE)) != 0;
    }

    /**
     * Whether {@code prot} allows writes.
     *
     * @param prot {@link Prot} bits
     * @return whether {@code WRITE} is set
     */
    public static boolean writable(int prot) {
        return (prot & WRITE) != 0;
    }

    /**
     * The bits as {@code /proc/self/maps} shows them.
     *
     * @param prot {@link Prot} bits
     * @return {@code "rw"}, {@code "r-"} or {@code "--"}
     */
    public static String toString(int prot) {
        return (readable(prot) ? "r" : "-") + (writable(prot) ? "w" : "-");
    }
}
