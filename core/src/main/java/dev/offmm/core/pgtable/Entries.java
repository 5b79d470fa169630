package dev.offmm.core.pgtable;

import dev.offmm.offheap.page.PageSize;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * Layout of the page tables and the one definition of the address geometry: 48-bit virtual
 * addresses, four levels of one 4 KiB frame of 512 eight-byte entries each. This class is the
 * only one that computes an entry's position; an entry is named by its byte offset in the
 * physical region ({@code (tablePfn << PAGE_SHIFT) + (index << 3)}).
 *
 * <pre>
 *   47       39 38       30 29       21 20       12 11          0
 *   +----------+-----------+-----------+-----------+-------------+
 *   | PGD index| PUD index | PMD index | PTE index | page offset |
 *   +----------+-----------+-----------+-----------+-------------+
 * </pre>
 *
 * <p>Levels are numbered by depth: {@link #PGD} 0, {@link #PUD} 1, {@link #PMD} 2, {@link #PTE} 3.
 * A table "of level L" holds level-L entries (a PMD table holds PMD entries).
 *
 * <p>The descent: {@link #pgdOffset}, then {@link #pudOffset}, {@link #pmdOffset} and
 * {@link #pteOffset}, each taking the value of the entry above (the kernel's {@code pgd_offset} ..
 * {@code pte_offset_map}). {@link #lookupPmd} is the lockless descent to a PMD entry that every
 * walker without locks uses.
 *
 * <p>Entries are written under the lock that guards them and read either under it (plain) or
 * locklessly (acquire). A table is published with a release store of its parent entry
 * ({@link #setRelease}), pairing with the acquire load of any walker ({@link #getAcquire}): the
 * walker then sees the zeroed table and its constructed lock.
 */
public final class Entries {
    /** Level of the PGD entries (512 GiB each). */
    public static final int PGD = 0;
    /** Level of the PUD entries (1 GiB each). */
    public static final int PUD = 1;
    /** Level of the PMD entries (2 MiB each). */
    public static final int PMD = 2;
    /** Level of the PTE entries (4 KiB each). */
    public static final int PTE = 3;

    /** Entries per table. */
    public static final int PTRS_PER_TABLE = 512;
    /** Shift of the PTE level: the base page. */
    public static final int PAGE_SHIFT = PageSize.SHIFT;
    /** Bytes of a base page. */
    public static final long PAGE_SIZE = PageSize.BYTES;
    /** The offset-in-page bits. */
    public static final long PAGE_MASK = PageSize.MASK;
    /** Shift of the PMD level (2 MiB per entry). */
    public static final int PMD_SHIFT = PAGE_SHIFT + 9;
    /** Shift of the PUD level (1 GiB per entry). */
    public static final int PUD_SHIFT = PMD_SHIFT + 9;
    /** Shift of the PGD level (512 GiB per entry). */
    public static final int PGDIR_SHIFT = PUD_SHIFT + 9;
    /** Bytes mapped by one PMD entry. */
    public static final long PMD_SIZE = 1L << PMD_SHIFT;
    /** The offset-in-huge-page bits. */
    public static final long PMD_MASK = PMD_SIZE - 1;
    /** Bytes mapped by one PUD entry. */
    public static final long PUD_SIZE = 1L << PUD_SHIFT;
    /** Bytes mapped by one PGD entry. */
    public static final long PGDIR_SIZE = 1L << PGDIR_SHIFT;
    /** One past the highest user address: the 47-bit lower half of the space ({@code TASK_SIZE}). */
    public static final long USER_END = 1L << (PGDIR_SHIFT + 8);

    private static final int ENTRY_SHIFT = 3;
    private static final VarHandle ENTRY = ValueLayout.JAVA_LONG.varHandle().withInvokeExactBehavior();

    private final MemorySegment region;

    /** Entries of tables in {@code region}. */
    public Entries(MemorySegment region) {
        this.region = region;
    }

    // ---- geometry

    /** The shift of {@code level}: an entry of that level maps {@code 1 << shift(level)} bytes. */
    public static int shift(int level) {
        return PGDIR_SHIFT - level * 9;
    }

    /** Bytes mapped by one entry of {@code level}. */
    public static long size(int level) {
        return 1L << shift(level);
    }

    /**
     * {@code pgd_addr_end} and friends: the end of the level-{@code level} entry that maps
     * {@code addr}, or {@code end} if that comes first.
     */
    public static long addrEnd(long addr, int level, long end) {
        long size = size(level);
        long boundary = (addr + size) & -size;
        return boundary <= 0 || boundary > end ? end : boundary;
    }

    /** The index of {@code va} in a table of {@code level}. */
    public static long index(long va, int level) {
        return (va >>> shift(level)) & (PTRS_PER_TABLE - 1);
    }

    // ---- positions

    /** The offset of entry {@code index} of table {@code tablePfn}. */
    public static long entry(long tablePfn, long index) {
        return (tablePfn << PAGE_SHIFT) + (index << ENTRY_SHIFT);
    }

    /** The entry for {@code va} in table {@code tablePfn} of {@code level}. */
    public static long offset(long tablePfn, long va, int level) {
        return entry(tablePfn, index(va, level));
    }

    /** {@code pgd_offset}: the PGD entry for {@code va}. */
    public static long pgdOffset(long pgdPfn, long va) {
        return offset(pgdPfn, va, PGD);
    }

    /** {@code pud_offset}: the PUD entry for {@code va} below a PGD entry of value {@code pgdval}. */
    public static long pudOffset(long pgdval, long va) {
        return offset(Pte.pfn(pgdval), va, PUD);
    }

    /** {@code pmd_offset}: the PMD entry for {@code va} below a PUD entry of value {@code pudval}. */
    public static long pmdOffset(long pudval, long va) {
        return offset(Pte.pfn(pudval), va, PMD);
    }

    /** {@code pte_offset}: the PTE for {@code va} in the PTE table a PMD entry of value {@code pmdval} names. */
    public static long pteOffset(long pmdval, long va) {
        return offset(Pte.pfn(pmdval), va, PTE);
    }

    /** The table frame that contains the entry at {@code entryAddr}. */
    public static long tableOf(long entryAddr) {
        return entryAddr >>> PAGE_SHIFT;
    }

    /** The byte offset of {@code va} in its base page. */
    public static long pageOffset(long va) {
        return va & PAGE_MASK;
    }

    /** The physical offset of byte {@code offset} of frame {@code pfn}. */
    public static long physical(long pfn, long offset) {
        return (pfn << PAGE_SHIFT) | offset;
    }

    // ---- access

    /** Acquire load, for lockless walkers; pairs with {@link #setRelease}. */
    public long getAcquire(long entryAddr) {
        return (long) ENTRY.getAcquire(region, entryAddr);
    }

    /** Plain load, under the entry's lock. */
    public long getPlain(long entryAddr) {
        return (long) ENTRY.get(region, entryAddr);
    }

    /** Plain store, into a table no walker can reach yet (or any more): a split's or a collapse's. */
    public void setPlain(long entryAddr, long value) {
        ENTRY.set(region, entryAddr, value);
    }

    /**
     * Release store, under the entry's lock: publishes everything written before it (a zeroed
     * table, a zeroed data page) to walkers that load the entry with acquire.
     */
    public void setRelease(long entryAddr, long value) {
        ENTRY.setRelease(region, entryAddr, value);
    }

    /**
     * The lockless descent from the PGD to the PMD entry of {@code va}: acquire loads, each entry
     * read once. Returns the PMD entry's address, or {@code -1 - level} where {@code level}
     * ({@link #PGD} or {@link #PUD}) holds no table. The caller keeps the tables alive (a VMA
     * lock, mmap_lock, or a context whose generation holds back their freeing).
     */
    public long lookupPmd(long pgdPfn, long va) {
        long pgdval = getAcquire(pgdOffset(pgdPfn, va));
        if (Pte.none(pgdval)) {
            return -1 - PGD;
        }
        long pudval = getAcquire(pudOffset(pgdval, va));
        if (Pte.none(pudval)) {
            return -1 - PUD;
        }
        return pmdOffset(pudval, va);
    }

    /** The level at which {@link #lookupPmd} found no table, given its negative result. */
    public static int missingLevel(long lookup) {
        return (int) (-1 - lookup);
    }

    /** Whether every entry of table {@code tablePfn} is empty (acquire loads). */
    public boolean tableEmpty(long tablePfn) {
        for (int i = 0; i < PTRS_PER_TABLE; i++) {
            if (!Pte.none(getAcquire(entry(tablePfn, i)))) {
                return false;
            }
        }
        return true;
    }
}
