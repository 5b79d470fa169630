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

    /** Readable: {@code READ} or {@code WRITE}. */
    public static boolean readable(int prot) {
        return (prot & (READ | WRITE)) != 0;
    }

    /** Writable. */
    public static boolean writable(int prot) {
        return (prot & WRITE) != 0;
    }

    /** "rw", "r-", "--". */
    public static String toString(int prot) {
        return (readable(prot) ? "r" : "-") + (writable(prot) ? "w" : "-");
    }
}
