package dev.offmm.offheap.lock;

import dev.offmm.offheap.LockClass;
import dev.offmm.offheap.page.MemMap;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The ptl-word helpers: the only code that reads or writes the ptl word of a mem_map record.
 * They mirror the kernel's {@code ptlock_alloc} / {@code ptlock_init} / {@code ptlock_free} /
 * {@code ptlock_ptr}.
 *
 * <p>A lock is named by a <em>handle</em>, a {@code long} that {@link #lock} and {@link #unlock}
 * take: in inline mode the byte offset of the ptl word inside mem_map (the word is the lock);
 * in debug mode the address of the lock record the word points at. The mode is fixed per
 * instance, so the branch on it is predictable and the JIT sees a final field.
 *
 * <p>The ptl word is written only by the table constructor and destructor, while the table is
 * private to the caller (before it is published in its parent entry, or after it was unlinked
 * and every lockless walker has moved on). The constructor's release store pairs with the
 * acquire load in {@link #ptlockPtr}.
 */
public final class PtLocks {
    private static final long INLINE_TOKEN = 1L;

    private final boolean debug;
    private final MemMap map;
    private final MemorySegment words;
    private final LockSlab slab;
    /** Locks this instance constructed and has not destroyed (both modes). */
    private final AtomicLong live = new AtomicLong();

    /**
     * Creates the helpers for the tables described by {@code map}; {@code debug} selects locks
     * allocated from {@code slab}, which inline mode never touches.
     */
    public PtLocks(MemMap map, LockSlab slab, boolean debug) {
        this.debug = debug;
        this.map = map;
        this.words = map.segment();
        this.slab = slab;
    }

    /** Whether locks are allocated debug locks. */
    public boolean debug() {
        return debug;
    }

    /**
     * The lock part of a page-table constructor: initialises the ptl word of {@code pfn} as an
     * unlocked lock of class {@code cls}. In debug mode this allocates a lock record and may fail.
     *
     * @return {@code false} if the lock could not be allocated; the table must then be freed
     */
    public boolean ptlockInit(long pfn, LockClass cls) {
        if (debug) {
            long rec = slab.alloc(cls);
            if (rec == 0) {
                return false;
            }
            // Release: pairs with the acquire in ptlockPtr; the record is initialised.
            map.setPtlRelease(pfn, rec);
        } else {
            map.setPtlRelease(pfn, 0L);
        }
        live.incrementAndGet();
        return true;
    }

    /**
     * The lock part of a page-table destructor: frees the debug lock of {@code pfn} and clears
     * the word. The lock must not be held.
     */
    public void ptlockFree(long pfn) {
        long word = map.ptlAcquire(pfn);
        if (debug) {
            if (word == 0) {
                throw new IllegalStateException("pfn=" + pfn + " has no debug lock to free (destructor run twice?)");
            }
            slab.free(word);
        } else if (word != 0) {
            throw new IllegalStateException("pfn=" + pfn + " destroyed while its inline lock is held");
        }
        map.setPtlRelease(pfn, 0L);
        live.decrementAndGet();
    }

    /**
     * Counts {@code delta} locks that this address space uses without having constructed them
     * (or no longer uses without destroying them): a shared PTE table's lock counts once in each
     * space that maps the table, so that every space's {@link #liveLocks()} is 0 once it has let
     * go of all its tables, whichever space constructed or destroys the lock.
     */
    public void accountShared(long delta) {
        live.addAndGet(delta);
    }

    /**
     * The handle of the lock of table {@code pfn} (the kernel's {@code ptlock_ptr}).
     *
     * @throws IllegalStateException in debug mode, if the table has no lock (constructor not run)
     */
    public long ptlockPtr(long pfn) {
        if (debug) {
            // Acquire: pairs with the release in ptlockInit.
            long rec = map.ptlAcquire(pfn);
            if (rec == 0) {
                throw new IllegalStateException("pfn=" + pfn + " has no lock: its table constructor did not run");
            }
            return rec;
        }
        return map.ptlOffset(pfn);
    }

    /** Takes the lock named by {@code handle}; returns {@code true} if it was contended. */
    public boolean lock(long handle) {
        if (debug) {
            return slab.lock(handle);
        }
        return SpinLock.lock(words, handle, INLINE_TOKEN);
    }

    /** One attempt to take the lock named by {@code handle}. */
    public boolean tryLock(long handle) {
        if (debug) {
            return slab.tryLock(handle);
        }
        return SpinLock.tryLock(words, handle, INLINE_TOKEN);
    }

    /** Releases the lock named by {@code handle}. In debug mode, a non-owner is caught. */
    public void unlock(long handle) {
        if (debug) {
            slab.unlock(handle);
        } else {
            SpinLock.unlock(words, handle);
        }
    }

    /**
     * Whether the lock is held: in debug mode by the calling thread, in inline mode by anyone
     * (an inline word has no owner). For assertions ({@code lockdep_assert_held}).
     */
    public boolean isHeld(long handle) {
        if (debug) {
            return slab.heldByCurrentThread(handle);
        }
        return SpinLock.holder(words, handle) != 0;
    }

    /** Statistics of a debug lock; {@code null} in inline mode. */
    public LockInfo info(long handle) {
        return debug ? slab.info(handle) : null;
    }

    /** Locks constructed through this instance and not yet destroyed. */
    public long liveLocks() {
        return live.get();
    }
}
