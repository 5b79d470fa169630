package dev.offmm.core.walk;

/**
 * Callbacks of {@code AddressSpace.walkPageRange} ({@code struct mm_walk_ops}). Each gets the
 * entry's value (read once, into a local: a callback must not re-read the entry and assume it
 * unchanged), the first address it covers and the end of what it covers within the walked
 * range. A non-zero return stops the walk and is returned by it.
 *
 * <p>Locks: the walk holds mmap_lock for read throughout; {@link #pteEntry} runs with the PTE
 * table's lock held. A callback must not fault, map or unmap in the same address space.
 */
public interface MmWalkOps {
    /**
     * A present PGD entry.
     *
     * @param entry the entry's value, read once
     * @param addr the first address it covers
     * @param next the end of what it covers within the walked range
     * @param walk the walk's state
     * @return 0 to go on, anything else to stop the walk with it
     */
    default int pgdEntry(long entry, long addr, long next, MmWalk walk) {
        return 0;
    }

    /**
     * A present PUD entry.
     *
     * @param entry the entry's value, read once
     * @param addr the first address it covers
     * @param next the end of what it covers within the walked range
     * @param walk the walk's state
     * @return 0 to go on, anything else to stop the walk with it
     */
    default int pudEntry(long entry, long addr, long next, MmWalk walk) {
        return 0;
    }

    /**
     * A non-empty PMD entry: a table, or a huge leaf (present, or PROT_NONE: then nothing is
     * below it, and the walk does not descend whatever the entry became since it was read).     *
     * @param entry the entry's value, read once
     * @param addr the first address it covers
     * @param next the end of what it covers within the walked range
     * @param walk the walk's state
     * @return 0 to go on, anything else to stop the walk with it
     */
    default int pmdEntry(long entry, long addr, long next, MmWalk walk) {
        return 0;
    }

    /**
     * A non-empty PTE, called under the PTE lock.
     *
     * @param entry the entry's value, read once
     * @param addr the first address it covers
     * @param next the end of what it covers within the walked range
     * @param walk the walk's state
     * @return 0 to go on, anything else to stop the walk with it
     */
    default int pteEntry(long entry, long addr, long next, MmWalk walk) {
        return 0;
    }

    /**
     * A range with no table or no leaf, at {@code depth} 0 (PGD) .. 3 (PTE): the level whose entry is empty.
     *
     * @param addr the first address of the hole
     * @param next the end of the hole within the walked range
     * @param depth the level of the empty entry
     * @param walk the walk's state
     * @return 0 to go on, anything else to stop the walk with it
     */
    default int pteHole(long addr, long next, int depth, MmWalk walk) {
        return 0;
    }
}
