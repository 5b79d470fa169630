package dev.offmm.core.model;

import dev.offmm.core.Advice;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Prot;

/**
 * One concrete operation of a model run. Every argument is stored, so a trace can be printed,
 * replayed on a fresh address space and shrunk: the model is the oracle for any sequence of
 * operations, not only for the sequence the generator produced.
 *
 * @param kind   what to do
 * @param addr   the virtual address (or the offset inside a pinned page)
 * @param len    a length in bytes, or a second value (the expected value of a CAS)
 * @param arg    prot, flags, advice, access width, pin slot: see {@link Kind}
 * @param value  a value to write, or the seed of the bytes of a bulk write
 */
record Op(Kind kind, long addr, long len, int arg, long value) {

    /** The operations; the comment says how the fields are used. */
    enum Kind {
        /** mmap(addr, len, prot = arg and 0xff, flags = arg shifted right by 8). */
        MMAP,
        /** mmap(0, len, prot = arg), check the placement, touch, munmap. */
        MMAP_ANYWHERE,
        /** munmap(addr, len). */
        MUNMAP,
        /** mprotect(addr, len, prot = arg). */
        MPROTECT,
        /** madvise(addr, len, advice = arg). */
        MADVISE,
        /** fault(addr, write = arg != 0). */
        FAULT,
        /** Mmu read of arg bytes (1, 4, 8) at addr. */
        MMU_GET,
        /** Mmu write of arg bytes (1, 4, 8) of value at addr. */
        MMU_PUT,
        /** Mmu atomic at addr: arg 0 getAcquire, 1 putRelease(value), 2 CAS(len, value), 3 getAndAdd(value). */
        MMU_ATOMIC,
        /** Mmu bulk read of len bytes at addr. */
        MMU_READ,
        /** Mmu bulk write of len bytes (seeded by value) at addr. */
        MMU_WRITE,
        /** Casual read of arg bytes (1, 8) at addr. */
        AS_GET,
        /** Casual write of arg bytes (1, 8) of value at addr. */
        AS_PUT,
        /** Casual bulk read of len bytes at addr. */
        AS_READ,
        /** Casual bulk write of len bytes (seeded by value) at addr. */
        AS_WRITE,
        /** Pin addr into slot arg and 0xf; bit 4 write, bit 5 through the Mmu. */
        PIN,
        /** Unpin slot arg (after checking its bytes). */
        UNPIN,
        /** Write the long value at offset addr of the page pinned in slot arg. */
        PIN_WRITE,
        /** Check the bytes of the page pinned in slot arg. */
        PIN_CHECK,
        /** Mmu idle. */
        IDLE,
        /** Compare mappings() inside this thread's zones with the model. */
        CHECK_MAPPINGS,
        /** Read 8 bytes of the shared window at addr; arg 1 through the Mmu. */
        SHARED_READ,
        /** Pin the shared page at addr for reading, check it, unpin. */
        SHARED_PIN,
        /** mprotect the whole shared window to prot = arg (thread 0 only). */
        SHARED_MPROTECT,
        /** Rewrite 8 bytes of the shared window at addr with its pattern (thread 0 only); arg 1 through the Mmu. */
        SHARED_WRITE,
        /** A call with bad arguments, variant arg, around addr: must fail and change nothing. */
        BAD_ARGS,
        /** Self-test only: a write the model is not told about. The run must catch it. */
        ROGUE_WRITE
    }

    @Override
    public String toString() {
        String a = "0x" + Long.toHexString(addr);
        return switch (kind) {
            case MMAP -> "mmap(" + a + ", " + len + ", " + Prot.toString(arg & 0xff) + ", " + flagsName(arg >>> 8) + ")";
            case MMAP_ANYWHERE -> "mmapAnywhere(" + len + ", " + Prot.toString(arg) + ")";
            case MUNMAP -> "munmap(" + a + ", " + len + ")";
            case MPROTECT -> "mprotect(" + a + ", " + len + ", " + Prot.toString(arg) + ")";
            case MADVISE -> "madvise(" + a + ", " + len + ", " + Advice.name(arg) + ")";
            case FAULT -> "fault(" + a + ", " + (arg != 0 ? "write" : "read") + ")";
            case MMU_GET, AS_GET -> kind + "(" + a + ", " + arg + " bytes)";
            case MMU_PUT, AS_PUT -> kind + "(" + a + ", " + arg + " bytes, 0x" + Long.toHexString(value) + ")";
            case MMU_ATOMIC -> "atomic" + arg + "(" + a + ", expected 0x" + Long.toHexString(len) + ", 0x"
                    + Long.toHexString(value) + ")";
            case MMU_READ, AS_READ -> kind + "(" + a + ", " + len + ")";
            case MMU_WRITE, AS_WRITE -> kind + "(" + a + ", " + len + ", seed " + value + ")";
            case PIN -> "pin[" + (arg & 0xf) + "](" + a + ", " + ((arg & 0x10) != 0 ? "write" : "read")
                    + ((arg & 0x20) != 0 ? ", mmu)" : ", casual)");
            case UNPIN, PIN_CHECK -> kind + "[" + arg + "]";
            case PIN_WRITE -> "pinWrite[" + arg + "](+" + addr + ", 0x" + Long.toHexString(value) + ")";
            case SHARED_READ, SHARED_WRITE -> kind + "(" + a + (arg != 0 ? ", mmu)" : ", casual)");
            case SHARED_PIN -> "sharedPin(" + a + ")";
            case SHARED_MPROTECT -> "sharedMprotect(" + Prot.toString(arg) + ")";
            case BAD_ARGS -> "badArgs#" + arg + "(" + a + ")";
            case ROGUE_WRITE -> "ROGUE(" + a + ", 0x" + Long.toHexString(value) + ")";
            default -> kind.toString();
        };
    }

    private static String flagsName(int flags) {
        if (flags == 0) {
            return "0";
        }
        StringBuilder b = new StringBuilder();
        String[] names = {"FIXED", "FIXED_NOREPLACE", "POPULATE", "NORESERVE"};
        int[] bits = {MapFlags.FIXED, MapFlags.FIXED_NOREPLACE, MapFlags.POPULATE, MapFlags.NORESERVE};
        for (int i = 0; i < bits.length; i++) {
            if ((flags & bits[i]) != 0) {
                b.append(b.isEmpty() ? "" : "|").append(names[i]);
            }
        }
        return b.toString();
    }
}
