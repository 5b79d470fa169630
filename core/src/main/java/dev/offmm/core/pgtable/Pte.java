package dev.offmm.core.pgtable;

/**
 * The page-table entry format, x86-64-like, shared by every level, and the one definition of
 * what an entry is. An entry is one 8-byte word:
 *
 * <pre>
 *   63        52 51                              12 11  10   9   8  7  6  5  4  3  2  1  0
 *   +-----------+----------------------------------+---+----+----+--+--+--+--+--+--+--+--+--+
 *   |  unused   |  pfn                             |HT | PN | Z  |  |PS|D |A |  |  |U |W |P |
 *   +-----------+----------------------------------+---+----+----+--+--+--+--+--+--+--+--+--+
 *   P present, W writable, U user, A accessed, D dirty, PS a huge (2 MiB) leaf at PMD level,
 *   Z software bit: maps the shared zero page, PN software bit: PROT_NONE (not present, frame kept),
 *   HT software bit, with PS: a hugetlb leaf, which has no deposited PTE table and never splits
 * </pre>
 *
 * A zero word is an empty entry ({@link #none}) at every level. Above the PTE level an entry is
 * either empty or a table ({@link #table}: present and not huge; only a PMD entry can be a huge
 * leaf). A table entry is present, writable and user, and names the frame of the next-level
 * table.
 */
public final class Pte {
    /** Present. */
    public static final long PRESENT = 1L;
    /** Writable. */
    public static final long WRITE = 1L << 1;
    /** User-accessible. */
    public static final long USER = 1L << 2;
    /** Accessed. */
    public static final long ACCESSED = 1L << 5;
    /** Dirty. */
    public static final long DIRTY = 1L << 6;
    /** A huge leaf at PMD level. */
    public static final long HUGE = 1L << 7;
    /** Software: maps the shared zero page. */
    public static final long SW_ZERO = 1L << 9;
    /** Software: PROT_NONE, not present but still owning its frame. */
    public static final long SW_PROTNONE = 1L << 10;
    /** Software, on a huge leaf: hugetlb (no deposited table, never split). */
    public static final long SW_HUGETLB = 1L << 11;
    /** The pfn field. */
    public static final long PFN_MASK = ((1L << 52) - 1) & ~Entries.PAGE_MASK;

    private Pte() {
    }

    /** The pfn an entry names. */
    public static long pfn(long entry) {
        return (entry & PFN_MASK) >>> Entries.PAGE_SHIFT;
    }

    /** {@code pte_none} / {@code pmd_none} / {@code pud_none} / {@code pgd_none}: an empty entry. */
    public static boolean none(long entry) {
        return entry == 0;
    }

    /** An entry naming a next-level table: present and not a huge leaf. */
    public static boolean table(long entry) {
        return (entry & (PRESENT | HUGE)) == PRESENT;
    }

    /** {@code pte_present}. */
    public static boolean present(long entry) {
        return (entry & PRESENT) != 0;
    }

    /** Writable and present. */
    public static boolean writable(long entry) {
        return (entry & (PRESENT | WRITE)) == (PRESENT | WRITE);
    }

    /** A leaf that owns a frame (a data page, present or PROT_NONE), not the zero page. */
    public static boolean ownsFrame(long entry) {
        return (entry & (PRESENT | SW_PROTNONE)) != 0 && (entry & SW_ZERO) == 0;
    }

    /** Maps the zero page. */
    public static boolean zero(long entry) {
        return (entry & SW_ZERO) != 0;
    }

    /** A huge leaf. */
    public static boolean huge(long entry) {
        return (entry & HUGE) != 0;
    }

    /** A hugetlb leaf. */
    public static boolean hugetlb(long entry) {
        return (entry & SW_HUGETLB) != 0;
    }

    /**
     * A huge (2 MiB) leaf of frame {@code pfn} with {@link #protBits} {@code protBits}, and
     * {@link #SW_HUGETLB} if {@code hugetlb}.
     */
    public static long mkHuge(long pfn, long protBits, boolean hugetlb) {
        return (pfn << Entries.PAGE_SHIFT) | protBits | HUGE | (hugetlb ? SW_HUGETLB : 0);
    }

    /**
     * The PTE that maps subpage {@code i} of huge leaf {@code huge} after a split: same
     * protection and dirty bit, not huge.
     */
    public static long subpage(long huge, int i) {
        return ((pfn(huge) + i) << Entries.PAGE_SHIFT) | (huge & ~(PFN_MASK | HUGE | SW_HUGETLB));
    }

    /** An entry pointing at a next-level table. */
    public static long mkTable(long pfn) {
        return (pfn << Entries.PAGE_SHIFT) | PRESENT | WRITE | USER | ACCESSED;
    }

    /**
     * A PMD entry naming a PTE table that other address spaces may map too: a table entry
     * without {@link #WRITE}. As on x86, a level's W bit limits every leaf below it, so every
     * entry of a shared table is write-protected for this space by one bit, however its own W
     * bit reads (see {@code TableShare}).
     */
    public static long mkSharedTable(long pfn) {
        return mkTable(pfn) & ~WRITE;
    }

    /** A table entry made by {@link #mkSharedTable}: its table may be shared. */
    public static boolean sharedTable(long entry) {
        return (entry & (PRESENT | HUGE | WRITE)) == PRESENT;
    }

    /** A leaf made read-only (copy-on-write), its frame and other bits kept. */
    public static long wrprotect(long entry) {
        return entry & ~WRITE;
    }

    /** A data-page leaf with protection derived from {@code prot} bits (see {@link #protBits}). */
    public static long mkPage(long pfn, long protBits) {
        return (pfn << Entries.PAGE_SHIFT) | protBits;
    }

    /** The zero-page leaf: present, read-only. */
    public static long mkZero(long zeroPfn) {
        return (zeroPfn << Entries.PAGE_SHIFT) | PRESENT | USER | ACCESSED | SW_ZERO;
    }

    /**
     * Entry bits for a page in a VMA with {@code readable}/{@code writable} access; an anonymous
     * page just written is also accessed and dirty.
     */
    public static long protBits(boolean readable, boolean writable) {
        if (!readable && !writable) {
            return SW_PROTNONE | USER;
        }
        return PRESENT | USER | ACCESSED | (writable ? WRITE | DIRTY : 0);
    }

    /** Replaces the protection of a leaf, keeping its frame, its zero-page bit and its size. */
    public static long withProt(long entry, boolean readable, boolean writable) {
        long keep = entry & (PFN_MASK | SW_ZERO | DIRTY | HUGE | SW_HUGETLB);
        if (!readable && !writable) {
            return keep | SW_PROTNONE | USER;
        }
        boolean w = writable && (entry & SW_ZERO) == 0;
        return keep | PRESENT | USER | ACCESSED | (w ? WRITE : 0);
    }
}
