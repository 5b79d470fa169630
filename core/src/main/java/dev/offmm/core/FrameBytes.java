package dev.offmm.core;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * Loads and stores of the bytes of data frames, at physical offsets in the region: the layout of
 * a data page is plain little-endian memory, and this class is the only one that touches it. The
 * ordering is in each name; plain accessors allow any alignment, the atomic ones need 8.
 */
final class FrameBytes {
    private static final VarHandle BYTE = ValueLayout.JAVA_BYTE.varHandle().withInvokeExactBehavior();
    private static final VarHandle INT = ValueLayout.JAVA_INT_UNALIGNED.varHandle().withInvokeExactBehavior();
    private static final VarHandle LONG = ValueLayout.JAVA_LONG_UNALIGNED.varHandle().withInvokeExactBehavior();
    private static final VarHandle ATOMIC_LONG = ValueLayout.JAVA_LONG.varHandle().withInvokeExactBehavior();

    private FrameBytes() {
    }

    /** {@code va}, if it is 8-byte aligned as an atomic access needs. */
    static long aligned8(long va) {
        if ((va & (Long.BYTES - 1)) != 0) {
            throw new IllegalArgumentException("va=0x" + Long.toHexString(va)
                    + " (expected 8-byte alignment for an atomic access)");
        }
        return va;
    }

    static byte getBytePlain(MemorySegment region, long pa) {
        return (byte) BYTE.get(region, pa);
    }

    static void setBytePlain(MemorySegment region, long pa, byte value) {
        BYTE.set(region, pa, value);
    }

    static int getIntPlain(MemorySegment region, long pa) {
        return (int) INT.get(region, pa);
    }

    static void setIntPlain(MemorySegment region, long pa, int value) {
        INT.set(region, pa, value);
    }

    static long getLongPlain(MemorySegment region, long pa) {
        return (long) LONG.get(region, pa);
    }

    static void setLongPlain(MemorySegment region, long pa, long value) {
        LONG.set(region, pa, value);
    }

    /** Load-acquire; pairs with {@link #setLongRelease}. */
    static long getLongAcquire(MemorySegment region, long pa) {
        return (long) ATOMIC_LONG.getAcquire(region, pa);
    }

    /** Store-release; pairs with {@link #getLongAcquire}. */
    static void setLongRelease(MemorySegment region, long pa, long value) {
        ATOMIC_LONG.setRelease(region, pa, value);
    }

    /** Volatile compare-and-set. */
    static boolean casLong(MemorySegment region, long pa, long expected, long value) {
        return (boolean) ATOMIC_LONG.compareAndSet(region, pa, expected, value);
    }

    /** Volatile get-and-add. */
    static long getAndAddLong(MemorySegment region, long pa, long delta) {
        return (long) ATOMIC_LONG.getAndAdd(region, pa, delta);
    }
}
