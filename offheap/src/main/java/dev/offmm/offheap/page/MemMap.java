package dev.offmm.offheap.page;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * The mem_map: one 64-byte struct-page record per 4 KiB frame, in its own off-heap region.
 * This class is the only place that knows an offset inside a record.
 *
 * <pre>
 *   0        8        16       24          32       40        48     52     56     60     64
 *   +--------+--------+--------+-----------+--------+---------+------+------+------+------+
 *   | flags  | next   | prev   | private   | owner  | ptl     | type | ref  | map  | tag  |
 *   +--------+--------+--------+-----------+--------+---------+------+------+------+------+
 *   flags    PG_* bits and the buddy order (bits 8..11)
 *   next/prev free-list links (buddy), pt_list links (tables)
 *   private  pmd_huge_pte: the PTE table deposited for a later huge-PMD split; slab in-use count;
 *            free order-9 block: the reporting pass that first saw it free
 *   owner    id of the address space that owns a page table
 *   ptl      the split page-table lock word: the lock itself (inline) or the address of an
 *            allocated debug lock. Only {@code dev.offmm.offheap.lock} touches it.
 *   type     page type (table level, anon, slab, zero); ref: refcount; map: mapcount; tag: test tag
 * </pre>
 *
 * Protocol in one sentence: a record belongs to whoever owns its frame (the buddy allocator
 * under its zone lock while free, the allocating thread after), except the ptl word, the
 * refcount and the mapcount, which are shared words accessed with the ordering in the
 * accessor's name.
 *
 * <h2>All zeros is a valid record for every frame that is not a free block's head</h2>
 * The mem_map is a host reservation: a record reads as zeros until first written, and the
 * allocator hands such never-used records out (a block brought online from the top of memory)
 * through the same paths as used ones. So every allocation path writes each field it needs
 * before it reads it (flags and refcount by the buddy or {@code HugeFrames}, type, owner,
 * private and ptl by the table and slab constructors, the mapcount by the first mapping) or
 * needs exactly the value zero: {@code TYPE_NONE}, mapcount and share count 0, ptl 0 (an
 * unlocked inline lock, no debug lock), tag 0. A record that is not the head of a free block
 * holds zero flags, zero type, mapcount and ptl (the free checks and the destructors see to it);
 * its next/prev/private/owner are stale and nobody reads them before writing them; its refcount
 * is 0 or a stale 1 that the next allocation overwrites. Free page reporting relies on this: it
 * gives back the host pages that hold only tail records of a reported 2 MiB block
 * ({@link #PG_MAP_REPORTED}), after which they read as zeros again.
 */
public final class MemMap {
    /** Bytes per record. */
    public static final long RECORD_BYTES = 64;
    /** log2 of {@link #RECORD_BYTES}. */
    public static final int RECORD_SHIFT = 6;
    /**
     * Bytes of the records of one naturally aligned 2 MiB block: 512 records, 32 KiB, eight
     * 4 KiB host pages starting on a page boundary of {@link #segment()} (block pfns are multiples
     * of 512, so the block's first record sits at a multiple of 32 KiB).
     */
    public static final long BLOCK_RECORD_BYTES = RECORD_BYTES << PageSize.HUGE_ORDER;

    private static final long FLAGS = 0;
    private static final long NEXT = 8;
    private static final long PREV = 16;
    private static final long PRIVATE = 24;
    private static final long OWNER = 32;
    private static final long PTL = 40;
    private static final long TYPE = 48;
    private static final long REFCOUNT = 52;
    private static final long MAPCOUNT = 56;
    private static final long TAG = 60;

    /** The frame is the head of a free buddy block; the order is in the order bits. */
    public static final long PG_BUDDY = 1L;
    /** The frame is the head of an allocated block; the order is in the order bits. */
    public static final long PG_ALLOCATED = 1L << 1;
    /** The frame is free, parked in a per-thread frame cache. */
    public static final long PG_PCP = 1L << 2;
    /** The frame is reserved for the whole life of the memory (the zero page). */
    public static final long PG_RESERVED = 1L << 3;
    /**
     * With {@link #PG_PCP}: the cached frame holds only zeros (it was zeroed as it was released
     * into the cache), so the allocation that takes it need not zero it again. With
     * {@link #PG_BUDDY}: every frame of the free block reads as zeros (never touched since the
     * host reserved it, or given back with {@code MADV_DONTNEED}).
     */
    public static final long PG_ZEROED = 1L << 4;
    /**
     * With {@link #PG_BUDDY}: the host holds no memory for the free block (never touched, or
     * given back by free page reporting, the kernel's {@code PageReported}).
     */
    public static final long PG_REPORTED = 1L << 5;
    /** A free order-9 block taken off its list by a reporting pass while it calls the host. */
    public static final long PG_ISOLATED = 1L << 6;
    /**
     * With {@link #PG_BUDDY} and {@link #PG_REPORTED}, on an order-9 head only: the host holds no
     * memory for the mem_map pages of the block's tail records either (every host page of its
     * {@link #BLOCK_RECORD_BYTES} but the first, which holds the head); they read as zeros. Not
     * handed to the halves of a split: from the block's allocation on they count as committed.
     */
    public static final long PG_MAP_REPORTED = 1L << 7;
    private static final int ORDER_SHIFT = 8;
    private static final long ORDER_MASK = 0xfL << ORDER_SHIFT;

    /** Page type: nothing special. */
    public static final int TYPE_NONE = 0;
    /** Page type: a PTE table whose constructor ran. */
    public static final int TYPE_PTE_TABLE = 1;
    /** Page type: a PMD table whose constructor ran. */
    public static final int TYPE_PMD_TABLE = 2;
    /** Page type: a PUD table. */
    public static final int TYPE_PUD_TABLE = 3;
    /** Page type: a PGD table. */
    public static final int TYPE_PGD_TABLE = 4;
    /** Page type: a page of the debug-lock slab. */
    public static final int TYPE_LOCK_SLAB = 5;
    /** Page type: the shared zero page. */
    public static final int TYPE_ZERO = 6;

    private static final VarHandle LONG = ValueLayout.JAVA_LONG.varHandle().withInvokeExactBehavior();
    private static final VarHandle INT = ValueLayout.JAVA_INT.varHandle().withInvokeExactBehavior();

    private final MemorySegment records;
    private final long nrFrames;

    /** A mem_map of {@code nrFrames} records over {@code records}; built by {@code PhysicalMemory}. */
    public MemMap(MemorySegment records, long nrFrames) {
        this.records = records;
        this.nrFrames = nrFrames;
    }

    /** Number of records (frames). */
    public long nrFrames() {
        return nrFrames;
    }

    /** The byte offset of the record of {@code pfn} inside {@link #segment()}. */
    public static long recordOffset(long pfn) {
        return pfn << RECORD_SHIFT;
    }

    private static long at(long pfn, long field) {
        return (pfn << RECORD_SHIFT) + field;
    }

    /** Encodes flags with a buddy order. */
    public static long withOrder(long flags, int order) {
        return (flags & ~ORDER_MASK) | ((long) order << ORDER_SHIFT);
    }

    /** The buddy order held in {@code flags}. */
    public static int orderOf(long flags) {
        return (int) ((flags & ORDER_MASK) >>> ORDER_SHIFT);
    }

    // ---- flags: owned by the buddy allocator or the frame's owner; freeing CASes them so that
    // ---- a double free from two threads is caught by exactly one of them.

    /** Plain load of the flags word. */
    public long flagsPlain(long pfn) {
        return (long) LONG.get(records, at(pfn, FLAGS));
    }

    /** Acquire load of the flags word; pairs with {@link #setFlagsRelease}. */
    public long flagsAcquire(long pfn) {
        return (long) LONG.getAcquire(records, at(pfn, FLAGS));
    }

    /** Plain store of the flags word. */
    public void setFlagsPlain(long pfn, long flags) {
        LONG.set(records, at(pfn, FLAGS), flags);
    }

    /** Release store of the flags word; pairs with {@link #flagsAcquire} and {@link #casFlags}. */
    public void setFlagsRelease(long pfn, long flags) {
        LONG.setRelease(records, at(pfn, FLAGS), flags);
    }

    /** Volatile compare-and-set of the flags word. */
    public boolean casFlags(long pfn, long expected, long flags) {
        return (boolean) LONG.compareAndSet(records, at(pfn, FLAGS), expected, flags);
    }

    // ---- free-list / pt_list links: plain, guarded by the list's lock

    /** Plain load of the next link. */
    public long nextPlain(long pfn) {
        return (long) LONG.get(records, at(pfn, NEXT));
    }

    /** Plain store of the next link. */
    public void setNextPlain(long pfn, long next) {
        LONG.set(records, at(pfn, NEXT), next);
    }

    /** Plain load of the prev link. */
    public long prevPlain(long pfn) {
        return (long) LONG.get(records, at(pfn, PREV));
    }

    /** Plain store of the prev link. */
    public void setPrevPlain(long pfn, long prev) {
        LONG.set(records, at(pfn, PREV), prev);
    }

    // ---- private (pmd_huge_pte, slab in-use count): guarded by the PMD lock / slab lock

    /** Plain load of the private word. */
    public long privatePlain(long pfn) {
        return (long) LONG.get(records, at(pfn, PRIVATE));
    }

    /** Plain store of the private word. */
    public void setPrivatePlain(long pfn, long value) {
        LONG.set(records, at(pfn, PRIVATE), value);
    }

    // ---- owner: written by the table constructor before the table is published (release in
    // ---- the page-table entry), read after an acquire load of that entry.

    /** Plain load of the owner word. */
    public long ownerPlain(long pfn) {
        return (long) LONG.get(records, at(pfn, OWNER));
    }

    /** Plain store of the owner word. */
    public void setOwnerPlain(long pfn, long owner) {
        LONG.set(records, at(pfn, OWNER), owner);
    }

    // ---- ptl word: the lock helpers in dev.offmm.offheap.lock, and nothing else, use these.

    /**
     * The byte offset of the ptl word of {@code pfn} inside {@link #segment()}: the inline lock
     * is operated on there. For the lock helpers only.
     */
    public long ptlOffset(long pfn) {
        return at(pfn, PTL);
    }

    /** Acquire load of the ptl word (debug mode: the lock's address); pairs with {@link #setPtlRelease}. */
    public long ptlAcquire(long pfn) {
        return (long) LONG.getAcquire(records, at(pfn, PTL));
    }

    /** Release store of the ptl word; the constructor publishes the lock with it. */
    public void setPtlRelease(long pfn, long value) {
        LONG.setRelease(records, at(pfn, PTL), value);
    }

    // ---- type: written by table constructors/destructors while the frame is private.

    /** Acquire load of the page type; pairs with {@link #setTypeRelease}. */
    public int typeAcquire(long pfn) {
        return (int) INT.getAcquire(records, at(pfn, TYPE));
    }

    /** Release store of the page type. */
    public void setTypeRelease(long pfn, int type) {
        INT.setRelease(records, at(pfn, TYPE), type);
    }

    // ---- refcount and mapcount: shared counters, volatile read-modify-write.

    /** Volatile load of the refcount. */
    public int refcountVolatile(long pfn) {
        return (int) INT.getVolatile(records, at(pfn, REFCOUNT));
    }

    /** Release store of the refcount (frame still private to the caller). */
    public void setRefcountRelease(long pfn, int value) {
        INT.setRelease(records, at(pfn, REFCOUNT), value);
    }

    /** Volatile read-modify-write: adds {@code delta} to the refcount and returns the new value. */
    public int addAndGetRefcount(long pfn, int delta) {
        return (int) INT.getAndAdd(records, at(pfn, REFCOUNT), delta) + delta;
    }

    /** Volatile load of the mapcount. */
    public int mapcountVolatile(long pfn) {
        return (int) INT.getVolatile(records, at(pfn, MAPCOUNT));
    }

    /** Release store of the mapcount (frame not yet mapped, or no longer reachable). */
    public void setMapcountRelease(long pfn, int value) {
        INT.setRelease(records, at(pfn, MAPCOUNT), value);
    }

    /** Volatile read-modify-write: adds {@code delta} to the mapcount and returns the new value. */
    public int addAndGetMapcount(long pfn, int delta) {
        return (int) INT.getAndAdd(records, at(pfn, MAPCOUNT), delta) + delta;
    }

    // ---- pt_share_count of a PTE table: the mapcount word of a table frame, which no entry maps,
    // ---- counts the other address spaces whose PMD entries name the table too (0: private). Its own
    // ---- word, never the refcount: the kernel's hugetlb PMD sharing moved to a separate
    // ---- pt_share_count in 2024 because transient references broke a refcount-based one.
    // ---- Changed with volatile read-modify-writes under the table's split lock, or after a grace
    // ---- period by a space that has let go of the table (see the core's TableShare).

    // ---- pages of a PTE table: the private word of a PTE table frame counts its entries that own
    // ---- a frame (present or PROT_NONE, not the zero page). Plain: changed only under the
    // ---- table's lock (or while no one else can reach the table), so that a fork can share the
    // ---- table and count its pages without reading its 512 entries.

    /** Entries of PTE table {@code pfn} that own a frame. */
    public long ptePagesPlain(long pfn) {
        return privatePlain(pfn);
    }

    /** Adds {@code delta} to the entries of PTE table {@code pfn} that own a frame. */
    public void addPtePagesPlain(long pfn, long delta) {
        setPrivatePlain(pfn, privatePlain(pfn) + delta);
    }

    /** The share count of PTE table {@code pfn} (volatile). */
    public int ptShareCountVolatile(long pfn) {
        return (int) INT.getVolatile(records, at(pfn, MAPCOUNT));
    }

    /** Adds {@code delta} to the share count of PTE table {@code pfn} (volatile); returns the new value. */
    public int addAndGetPtShareCount(long pfn, int delta) {
        return (int) INT.getAndAdd(records, at(pfn, MAPCOUNT), delta) + delta;
    }

    /** Resets the share count of a PTE table about to be freed (release). */
    public void clearPtShareCount(long pfn) {
        INT.setRelease(records, at(pfn, MAPCOUNT), 0);
    }

    /**
     * {@code page_maybe_dma_pinned}: page {@code pfn} has a reference beyond its mappings (each
     * mapping holds one of each, so one more reference is a pin). Volatile loads.
     */
    public boolean maybePinned(long pfn) {
        return refcountVolatile(pfn) != mapcountVolatile(pfn);
    }

    // ---- tag: a free word for tests and tools, volatile.

    /** Volatile load of the tag. */
    public int tagVolatile(long pfn) {
        return (int) INT.getVolatile(records, at(pfn, TAG));
    }

    /** Volatile compare-and-set of the tag. */
    public boolean casTag(long pfn, int expected, int tag) {
        return (boolean) INT.compareAndSet(records, at(pfn, TAG), expected, tag);
    }

    /** Volatile store of the tag. */
    public void setTagVolatile(long pfn, int tag) {
        INT.setVolatile(records, at(pfn, TAG), tag);
    }

    /** The records region. For the lock helpers, which spin on ptl words in place. */
    public MemorySegment segment() {
        return records;
    }
}
