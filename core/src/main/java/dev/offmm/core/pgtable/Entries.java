package dev.offmm.core.pgtable;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * Layout of a page table: one 4 KiB frame of 512 eight-byte entries, at every level. This class
 * is the only one that computes an entry's position; an entry is named by its byte offset in
 * the physical region ({@code (tablePfn << 12) + (index << 3)}).
 *
 * <p>Entries are written under the lock that guards them and read either under it (plain) or
 * locklessly (acquire). A table is published with a release store of its parent entry
 * ({@link #setRelease}), pairing with the acquire load of any walker ({@link #getAcquire}): the
 * walker then sees the zeroed table and its constructed lock.
 */
public final class Entries {
    /** Entries per table. */
    public static final int PTRS_PER_TABLE = 512;
    /** Shift of the PTE level (4 KiB). */
    public static final int PAGE_SHIFT = 12;
    /** Shift of the PMD level (2 MiB per entry). */
    public static final int PMD_SHIFT = 21;
    /** Shift of the PUD level (1 GiB per entry). */
    public static final int PUD_SHIFT = 30;
    /** Shift of the PGD level (512 GiB per entry). */
    public static final int PGDIR_SHIFT = 39;
    /** Bytes mapped by one PMD entry. */
    public static final long PMD_SIZE = 1L << PMD_SHIFT;
    /** Bytes mapped by one PUD entry. */
    public static final long PUD_SIZE = 1L << PUD_SHIFT;
    /** Bytes mapped by one PGD entry. */
    public static final long PGDIR_SIZE = 1L << PGDIR_SHIFT;

    private static final VarHandle ENTRY = ValueLayout.JAVA_LONG.varHandle().withInvokeExactBehavior();

    private final MemorySegment region;

    /** Entries of tables in {@code region}. */
    public Entries(MemorySegment region) {
        this.region = region;
    }

    /** The offset of entry {@code index} of table {@code tablePfn}. */
    public static long entry(long tablePfn, long index) {
        return (tablePfn << 12) + (index << 3);
    }

    /** The table frame that contains the entry at {@code entryAddr}. */
    public static long tableOf(long entryAddr) {
        return entryAddr >>> 12;
    }

    /** The index of the entry at {@code entryAddr} in its table. */
    public static int indexOf(long entryAddr) {
        return (int) ((entryAddr & 0xfff) >>> 3);
    }

    /** Index of {@code va} at level {@code shift}. */
    public static long index(long va, int shift) {
        return (va >>> shift) & (PTRS_PER_TABLE - 1);
    }

    /** Acquire load, for lockless walkers; pairs with {@link #setRelease}. */
    public long getAcquire(long entryAddr) {
        return (long) ENTRY.getAcquire(region, entryAddr);
    }

    /** Plain load, under the entry's lock. */
    public long getPlain(long entryAddr) {
        return (long) ENTRY.get(region, entryAddr);
    }

    /**
     * Release store, under the entry's lock: publishes everything written before it (a zeroed
     * table, a zeroed data page) to walkers that load the entry with acquire.
     */
    public void setRelease(long entryAddr, long value) {
        ENTRY.setRelease(region, entryAddr, value);
    }

    /** Fills table {@code tablePfn} with empty entries. */
    public void zeroTable(long tablePfn) {
        region.asSlice(tablePfn << 12, 4096).fill((byte) 0);
    }

    /** Whether every entry of table {@code tablePfn} is empty (acquire loads). */
    public boolean tableEmpty(long tablePfn) {
        for (int i = 0; i < PTRS_PER_TABLE; i++) {
            if (getAcquire(entry(tablePfn, i)) != 0) {
                return false;
            }
        }
        return true;
    }
}
