package dev.offmm.offheap.lock;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * Layout of a debug lock record in the lock slab: 64 bytes, one cache line, inside a slab page
 * of the physical region. A record's address is its byte offset in that region; 0 is never a
 * record (pfn 0 is the reserved zero page), so a zero ptl word means "no lock".
 *
 * <pre>
 *   0        8       12      16      24      32        40         48      56      64
 *   +--------+-------+-------+-------+-------+---------+----------+-------+-------+
 *   | word   | class | magic | acq   | cont  | maxHold | lockedAt | next  | prev  |
 *   +--------+-------+-------+-------+-------+---------+----------+-------+-------+
 *   word     0 = unlocked, else the holder's thread id (volatile CAS / release store)
 *   class    LockClass ordinal; magic: LIVE while allocated, FREE after (catches use after free)
 *   acq/cont acquisitions and contended acquisitions; maxHold/lockedAt: longest hold in ns
 *            (sampled) and the start of the current timed hold. Written by the holder under the
 *            lock, read racily with opaque loads.
 *   next/prev free-list links, guarded by the slab lock
 * </pre>
 */
final class LockRecord {
    static final long BYTES = 64;
    static final long WORD = 0;
    static final long CLASS = 8;
    static final long MAGIC = 12;
    static final long ACQUISITIONS = 16;
    static final long CONTENTIONS = 24;
    static final long MAX_HOLD = 32;
    static final long LOCKED_AT = 40;
    static final long NEXT = 48;
    static final long PREV = 56;

    static final int MAGIC_LIVE = 0x504c4f43;
    static final int MAGIC_FREE = 0x66726565;

    private static final VarHandle LONG = ValueLayout.JAVA_LONG.varHandle().withInvokeExactBehavior();
    private static final VarHandle INT = ValueLayout.JAVA_INT.varHandle().withInvokeExactBehavior();

    private LockRecord() {
    }

    static long getPlain(MemorySegment s, long rec, long field) {
        return (long) LONG.get(s, rec + field);
    }

    static long getOpaque(MemorySegment s, long rec, long field) {
        return (long) LONG.getOpaque(s, rec + field);
    }

    static void setPlain(MemorySegment s, long rec, long field, long v) {
        LONG.set(s, rec + field, v);
    }

    /** Opaque store for statistics that other threads read racily. */
    static void setOpaque(MemorySegment s, long rec, long field, long v) {
        LONG.setOpaque(s, rec + field, v);
    }

    static void setIntPlain(MemorySegment s, long rec, long field, int v) {
        INT.set(s, rec + field, v);
    }

    static int intOpaque(MemorySegment s, long rec, long field) {
        return (int) INT.getOpaque(s, rec + field);
    }

    static int intAcquire(MemorySegment s, long rec, long field) {
        return (int) INT.getAcquire(s, rec + field);
    }

    /** Release: pairs with {@link #intAcquire} in a lock or free check. */
    static void setIntRelease(MemorySegment s, long rec, long field, int v) {
        INT.setRelease(s, rec + field, v);
    }
}
