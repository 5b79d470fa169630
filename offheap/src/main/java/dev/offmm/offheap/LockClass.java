package dev.offmm.offheap;

/** What a page-table lock guards; statistics and lock-order checks are kept per class. */
public enum LockClass {
    /** An address space's {@code page_table_lock}: PGD and PUD entries, or everything in single mode. */
    PAGE_TABLE_LOCK,
    /** A PMD table's split lock. */
    PMD,
    /** A PTE table's split lock. */
    PTE,
    /** Anything else (tests, tools). */
    OTHER;

    private static final LockClass[] VALUES = values();

    /**
     * The class with this ordinal, without the copy {@link #values()} makes.
     *
     * @param ordinal an ordinal, {@code 0 <= ordinal < values().length}
     * @return the class with that ordinal
     */
    public static LockClass of(int ordinal) {
        return VALUES[ordinal];
    }
}
