package dev.offmm.offheap.lock;

import dev.offmm.offheap.LockClass;
import dev.offmm.offheap.frame.FrameAllocator;
import dev.offmm.offheap.inject.FailPoints;
import dev.offmm.offheap.inject.FailSite;
import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.page.PageSize;

import java.lang.foreign.MemorySegment;

/**
 * The slab of debug locks ({@code ALLOC_SPLIT_PTLOCKS}): 64 lock records per 4 KiB slab page,
 * slab pages taken from and returned to the frame allocator. A record records its holder thread,
 * lock class, acquisitions, contentions and the longest hold it has seen.
 *
 * <p>Allocation can fail (no frame for a new slab page, or a fail point): {@link #alloc} then
 * returns 0 and the table constructor reports the failure. One empty slab page is kept for
 * reuse; further empty pages go back to the frame allocator.
 *
 * <p>Hold times are sampled: every contended acquisition and one in {@value #HOLD_SAMPLE}
 * uncontended ones are timed, so the debug lock stays within 2x an inline lock.
 */
public final class LockSlab {
    private static final int RECORDS_PER_PAGE = (int) (PageSize.BYTES / LockRecord.BYTES);
    private static final long NIL = 0;
    static final int HOLD_SAMPLE = 16;

    private final MemorySegment region;
    private final MemMap map;
    private final FrameAllocator frames;
    private final FailPoints failPoints;
    private final Object slabLock = new Object();
    private long freeHead = NIL;
    private long emptyPages;
    private long pages;
    private volatile long live;

    /** Creates an empty slab over the physical {@code region}, taking pages from {@code frames}. */
    public LockSlab(MemorySegment region, MemMap map, FrameAllocator frames, FailPoints failPoints) {
        this.region = region;
        this.map = map;
        this.frames = frames;
        this.failPoints = failPoints;
    }

    /**
     * Allocates an unlocked record of class {@code cls}. Returns its address, or 0 if no memory
     * (or a fail point) denied it.
     */
    public long alloc(LockClass cls) {
        if (failPoints.shouldFail(FailSite.PTLOCK)) {
            return NIL;
        }
        synchronized (slabLock) {
            if (freeHead == NIL && !growLocked()) {
                return NIL;
            }
            long rec = freeHead;
            unlinkLocked(rec);
            long page = rec >>> PageSize.SHIFT;
            long inUse = map.privatePlain(page);
            if (inUse == 0) {
                emptyPages--;
            }
            map.setPrivatePlain(page, inUse + 1);
            LockRecord.setPlain(region, rec, LockRecord.WORD, 0);
            LockRecord.setPlain(region, rec, LockRecord.ACQUISITIONS, 0);
            LockRecord.setPlain(region, rec, LockRecord.CONTENTIONS, 0);
            LockRecord.setPlain(region, rec, LockRecord.MAX_HOLD, 0);
            LockRecord.setPlain(region, rec, LockRecord.LOCKED_AT, 0);
            LockRecord.setIntPlain(region, rec, LockRecord.CLASS, cls.ordinal());
            // Release: the record is fully initialised before it is marked live; the ptl word
            // that publishes it is itself stored with release (PtLocks.ptlockInit).
            LockRecord.setIntRelease(region, rec, LockRecord.MAGIC, LockRecord.MAGIC_LIVE);
            live++;
            return rec;
        }
    }

    /** Frees a record; it must be allocated and unlocked. */
    public void free(long rec) {
        checkLive(rec);
        long holder = SpinLock.holder(region, rec + LockRecord.WORD);
        if (holder != 0) {
            throw new IllegalStateException("freeing debug lock 0x" + Long.toHexString(rec)
                    + " while thread " + holder + " holds it");
        }
        synchronized (slabLock) {
            LockRecord.setIntRelease(region, rec, LockRecord.MAGIC, LockRecord.MAGIC_FREE);
            pushLocked(rec);
            live--;
            long page = rec >>> PageSize.SHIFT;
            long inUse = map.privatePlain(page) - 1;
            map.setPrivatePlain(page, inUse);
            if (inUse == 0) {
                if (emptyPages > 0) {
                    releasePageLocked(page);
                } else {
                    emptyPages++;
                }
            }
        }
    }

    /**
     * Takes the lock at {@code rec}; returns {@code true} if contended.
     *
     * @throws IllegalMonitorStateException if the calling thread already holds it (self-deadlock)
     * @throws IllegalStateException if {@code rec} is not a live lock
     */
    public boolean lock(long rec) {
        checkLiveFast(rec);
        long tid = Thread.currentThread().threadId();
        boolean contended = false;
        if (!SpinLock.tryLock(region, rec + LockRecord.WORD, tid)) {
            checkLive(rec);
            if (SpinLock.holder(region, rec + LockRecord.WORD) == tid) {
                throw new IllegalMonitorStateException("thread " + tid + " already holds "
                        + describe(rec) + " (recursive acquisition would deadlock)");
            }
            SpinLock.lock(region, rec + LockRecord.WORD, tid);
            contended = true;
        }
        // Under the lock: plain reads, opaque stores for racy readers of the statistics.
        long acq = LockRecord.getPlain(region, rec, LockRecord.ACQUISITIONS) + 1;
        LockRecord.setOpaque(region, rec, LockRecord.ACQUISITIONS, acq);
        if (contended) {
            LockRecord.setOpaque(region, rec, LockRecord.CONTENTIONS,
                    LockRecord.getPlain(region, rec, LockRecord.CONTENTIONS) + 1);
        }
        boolean timed = contended || (acq & (HOLD_SAMPLE - 1)) == 0;
        if (timed) {
            // Untimed holds leave the word 0 (unlock clears it after a timed hold): one store
            // fewer on the common path.
            LockRecord.setPlain(region, rec, LockRecord.LOCKED_AT, System.nanoTime());
        }
        return contended;
    }

    /**
     * One attempt to take the lock at {@code rec}.
     *
     * @throws IllegalStateException if {@code rec} is not a live lock
     */
    public boolean tryLock(long rec) {
        checkLiveFast(rec);
        long tid = Thread.currentThread().threadId();
        if (!SpinLock.tryLock(region, rec + LockRecord.WORD, tid)) {
            return false;
        }
        LockRecord.setOpaque(region, rec, LockRecord.ACQUISITIONS,
                LockRecord.getPlain(region, rec, LockRecord.ACQUISITIONS) + 1);
        return true;
    }

    /**
     * Releases the lock at {@code rec}.
     *
     * @throws IllegalMonitorStateException if the calling thread does not hold it
     */
    public void unlock(long rec) {
        long tid = Thread.currentThread().threadId();
        long holder = SpinLock.holder(region, rec + LockRecord.WORD);
        if (holder != tid) {
            throw new IllegalMonitorStateException("thread " + tid + " unlocks " + describe(rec)
                    + (holder == 0 ? " which is not locked" : " held by thread " + holder));
        }
        long since = LockRecord.getPlain(region, rec, LockRecord.LOCKED_AT);
        if (since != 0) {
            long held = System.nanoTime() - since;
            if (held > LockRecord.getPlain(region, rec, LockRecord.MAX_HOLD)) {
                LockRecord.setOpaque(region, rec, LockRecord.MAX_HOLD, held);
            }
            LockRecord.setPlain(region, rec, LockRecord.LOCKED_AT, 0);
        }
        SpinLock.unlock(region, rec + LockRecord.WORD);
    }

    /** Whether the calling thread holds the lock at {@code rec}. */
    public boolean heldByCurrentThread(long rec) {
        return SpinLock.holder(region, rec + LockRecord.WORD) == Thread.currentThread().threadId();
    }

    /** The holder's thread id, or 0. */
    public long holder(long rec) {
        return SpinLock.holder(region, rec + LockRecord.WORD);
    }

    /** Statistics of one lock (racy snapshot). */
    public LockInfo info(long rec) {
        checkLive(rec);
        return new LockInfo(LockClass.of(LockRecord.intOpaque(region, rec, LockRecord.CLASS)),
                holder(rec),
                LockRecord.getOpaque(region, rec, LockRecord.ACQUISITIONS),
                LockRecord.getOpaque(region, rec, LockRecord.CONTENTIONS),
                LockRecord.getOpaque(region, rec, LockRecord.MAX_HOLD));
    }

    /** Debug locks currently allocated, over all users of the slab. */
    public long liveLocks() {
        return live;
    }

    /** Pages the slab holds now. */
    public long pages() {
        synchronized (slabLock) {
            return pages;
        }
    }

    /** Returns every empty slab page to the frame allocator. */
    public void shrink() {
        synchronized (slabLock) {
            if (live == 0) {
                while (freeHead != NIL) {
                    releasePageLocked(freeHead >>> PageSize.SHIFT);
                }
                emptyPages = 0;
            }
        }
    }

    /** The hot-path check before a lock word is written: one load of the magic, on the lock's own cache line. */
    private void checkLiveFast(long rec) {
        if (LockRecord.intAcquire(region, rec, LockRecord.MAGIC) != LockRecord.MAGIC_LIVE) {
            checkLive(rec);
        }
    }

    private void checkLive(long rec) {
        if (rec <= 0 || (rec & (LockRecord.BYTES - 1)) != 0 || rec >= region.byteSize()
                || map.typeAcquire(rec >>> PageSize.SHIFT) != MemMap.TYPE_LOCK_SLAB
                || LockRecord.intAcquire(region, rec, LockRecord.MAGIC) != LockRecord.MAGIC_LIVE) {
            throw new IllegalStateException("0x" + Long.toHexString(rec) + " is not a live debug lock (use after free?)");
        }
    }

    private String describe(long rec) {
        return LockClass.of(LockRecord.intOpaque(region, rec, LockRecord.CLASS))
                + " lock 0x" + Long.toHexString(rec);
    }

    private boolean growLocked() {
        if (failPoints.shouldFail(FailSite.SLAB_PAGE)) {
            return false;
        }
        long pfn = frames.allocFrame();
        if (pfn == FrameAllocator.NO_FRAME) {
            return false;
        }
        region.asSlice(pfn << PageSize.SHIFT, PageSize.BYTES).fill((byte) 0);
        map.setPrivatePlain(pfn, 0);
        map.setTypeRelease(pfn, MemMap.TYPE_LOCK_SLAB);
        for (int i = RECORDS_PER_PAGE - 1; i >= 0; i--) {
            long rec = (pfn << PageSize.SHIFT) + i * LockRecord.BYTES;
            LockRecord.setIntRelease(region, rec, LockRecord.MAGIC, LockRecord.MAGIC_FREE);
            pushLocked(rec);
        }
        pages++;
        emptyPages++;
        return true;
    }

    private void releasePageLocked(long pfn) {
        for (int i = 0; i < RECORDS_PER_PAGE; i++) {
            unlinkLocked((pfn << PageSize.SHIFT) + i * LockRecord.BYTES);
        }
        map.setTypeRelease(pfn, MemMap.TYPE_NONE);
        pages--;
        frames.freeFrame(pfn);
    }

    private void pushLocked(long rec) {
        LockRecord.setPlain(region, rec, LockRecord.NEXT, freeHead);
        LockRecord.setPlain(region, rec, LockRecord.PREV, NIL);
        if (freeHead != NIL) {
            LockRecord.setPlain(region, freeHead, LockRecord.PREV, rec);
        }
        freeHead = rec;
    }

    private void unlinkLocked(long rec) {
        long next = LockRecord.getPlain(region, rec, LockRecord.NEXT);
        long prev = LockRecord.getPlain(region, rec, LockRecord.PREV);
        if (prev == NIL) {
            freeHead = next;
        } else {
            LockRecord.setPlain(region, prev, LockRecord.NEXT, next);
        }
        if (next != NIL) {
            LockRecord.setPlain(region, next, LockRecord.PREV, prev);
        }
    }
}
