package dev.offmm.offheap.frame;

import dev.offmm.offheap.inject.FailPoints;
import dev.offmm.offheap.inject.FailSite;
import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.page.PageSize;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * Free page reporting ({@code mm/page_reporting.c}): free order-9 blocks that stay free for
 * {@code delay} are given back to the host, so offmm's memory costs the host only what it holds.
 *
 * <p>One daemon thread per physical memory, parked while every free 2 MiB block is reported (it
 * wakes once a second to look for frames parked in idle caches);
 * the buddy wakes it when an unreported one appears. A pass runs every quarter of the delay and
 * stamps the blocks it finds free with its number (in the head's private word); a block still
 * free four passes later, so free for at least the delay and at most 1.25 times it, is reported
 * (delay 0: at once). Reporting follows the kernel: under the zone lock, take a batch off the
 * head of the order-9 list (unreported blocks sit there, reported ones at the tail) and mark
 * them isolated; drop the lock and call the host for each ({@code madvise}); take the lock again
 * and put them back, reported ({@code PG_REPORTED}, with {@code PG_ZEROED} for
 * {@code MADV_DONTNEED}) or, if the call failed, as they were. An allocation that finds only
 * isolated blocks waits for the batch rather than fail. Nothing runs on the fault path; the
 * zone lock is never held across a host call.
 *
 * <p>A reported block's struct pages go back too, but for the host page that holds its head: a
 * block's 512 records are eight 4 KiB pages of the mem_map, and while the block is isolated the
 * reporter gives back the seven that hold only tail records ({@code MADV_DONTNEED}, whatever
 * {@code discard} the frames use: 28 KiB, so cheap to fault back, and afterwards they read as
 * zeros). A tail record of a free block is valid as zeros, the state of a record never used (see
 * {@link MemMap}); the head keeps the buddy's order, links and flags, and gains
 * {@code PG_MAP_REPORTED}. The call is made after the frames' call succeeded and before the
 * put-back, whose zone lock orders it before any allocation of the block; if it fails, the block
 * is still reported, its records stay as they were (a partial discard only zeroed tail records),
 * and {@link #failedReports()} counts it. An {@code EINVAL} (host pages larger than 4 KiB) turns
 * the struct-page part off, uncounted: a limit of the host, not a failed report. The mem_map is
 * advised {@code MADV_NOHUGEPAGE}, so a host with THP {@code always} does not hold it in 2 MiB pages.
 *
 * <p>Frames in the per-thread caches are not reported while their thread uses its cache: at
 * most {@code high} (512 by default, 2 MiB) per thread, and they are the ones that come back hot.
 * A cache nobody touched for the delay is drained into the buddy by the pass (the kernel decays
 * the high mark of idle pcp lists the same way), because one frame parked there, typically a page
 * table freed by an munmap, keeps its whole 2 MiB block from merging and being reported. Blocks
 * such a drain completes count as free since the cache went idle; if the other half of one was
 * freed just now it is reported early, which costs a host fault later and nothing else.
 */
final class PageReporter implements Runnable {
    /** Blocks taken off the list per lock hold, and blocks looked at per hold. */
    private static final int BATCH = 32;
    private static final int SCAN = 1024;
    /** Passes a block must stay free before it is reported (the delay is four intervals). */
    private static final int AGE_PASSES = 4;
    /** Shortest pause between passes that leave blocks behind (delay 0, failing host calls). */
    private static final long MIN_INTERVAL_NANOS = TimeUnit.MILLISECONDS.toNanos(1);
    /** {@code EINVAL}: the host refused the range (its pages are larger than 4 KiB). */
    private static final int EINVAL = 22;
    /** Longest sleep of an idle reporter before it looks at the caches again. */
    private static final long IDLE_LOOK_NANOS = TimeUnit.SECONDS.toNanos(1);

    private final BuddyAllocator buddy;
    /** The allocator whose idle caches a pass drains; null for a bare buddy (tests). */
    private final FrameAllocator frames;
    private final FrameAllocator.Discarder host;
    /** Gives back mem_map ranges (offsets in {@link MemMap#segment()}); null: struct pages stay. */
    private final FrameAllocator.Discarder mapHost;
    /** Set (on the reporter's thread) once the host refused a mem_map range with EINVAL. */
    private boolean mapOff;
    private final boolean zeroes;
    private final FailPoints failPoints;
    private final int agePasses;
    private final long intervalNanos;
    private final Thread thread;
    private final long[] batch = new long[BATCH];
    private final AtomicLong reportedBlocks = new AtomicLong();
    private final AtomicLong failedReports = new AtomicLong();
    private final AtomicLong passes = new AtomicLong();
    /** Set by the thread before it parks for want of work; cleared by whoever wakes it. */
    private volatile boolean idle;
    private volatile boolean stopped;
    private long stamp;

    /**
     * A reporter over {@code frames} that reports blocks free for {@code delayNanos} through
     * {@code host}, and their tail records through {@code mapHost} (null: not); {@code zeroes}: a
     * reported block reads as zeros afterwards. Not started.
     */
    PageReporter(FrameAllocator frames, FrameAllocator.Discarder host, FrameAllocator.Discarder mapHost, boolean zeroes,
            long delayNanos, FailPoints failPoints) {
        this(frames.buddy(), frames, host, mapHost, zeroes, delayNanos, failPoints);
    }

    /** A reporter over a bare {@code buddy}, with no caches to drain (the jcstress probe, tests). */
    PageReporter(BuddyAllocator buddy, FrameAllocator.Discarder host, FrameAllocator.Discarder mapHost, boolean zeroes,
            long delayNanos, FailPoints failPoints) {
        this(buddy, null, host, mapHost, zeroes, delayNanos, failPoints);
    }

    private PageReporter(BuddyAllocator buddy, FrameAllocator frames, FrameAllocator.Discarder host,
            FrameAllocator.Discarder mapHost, boolean zeroes, long delayNanos, FailPoints failPoints) {
        this.buddy = buddy;
        this.frames = frames;
        this.host = host;
        this.mapHost = mapHost;
        this.zeroes = zeroes;
        this.failPoints = failPoints;
        this.agePasses = delayNanos == 0 ? 0 : AGE_PASSES;
        this.intervalNanos = Math.max(MIN_INTERVAL_NANOS, delayNanos / AGE_PASSES);
        this.thread = Thread.ofPlatform().daemon().name("offmm-page-reporting").unstarted(this);
        buddy.onHugeBlockFreed(this::wake);
    }

    void start() {
        thread.start();
    }

    /** Under the zone lock, from the buddy: an unreported block is free. Wakes an idle reporter. */
    private void wake() {
        if (idle) {
            idle = false;
            LockSupport.unpark(thread);
        }
    }

    /** Stops the thread and waits for a pass in progress (it may be calling the host on the region). */
    void stop() {
        stopped = true;
        LockSupport.unpark(thread);
        if (thread.isAlive() && Thread.currentThread() != thread) {
            boolean interrupted = false;
            while (true) {
                try {
                    thread.join();
                    break;
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    @Override
    public void run() {
        while (!stopped) {
            if (buddy.unreportedHugeBlocks() == 0 && frames != null && frames.cachesHoldFrames()) {
                // Nothing to report, but frames parked in caches may pin blocks: keep watching
                // the caches, one pass per interval, until they are empty or busy.
                LockSupport.parkNanos(this, intervalNanos);
                if (!stopped) {
                    pass();
                }
                continue;
            }
            if (buddy.unreportedHugeBlocks() == 0) {
                idle = true;
                // Re-checked after the flag: a block freed meanwhile unparks (the permit stays).
                // The park is timed: frames freed into a cache wake nobody (the free path stays
                // untouched), so the caches are looked at again at least every IDLE_LOOK_NANOS.
                if (buddy.unreportedHugeBlocks() == 0 && !stopped) {
                    LockSupport.parkNanos(this, Math.max(intervalNanos, IDLE_LOOK_NANOS));
                }
                idle = false;
                continue;
            }
            pass();
            if (buddy.unreportedHugeBlocks() > 0 && !stopped) {
                LockSupport.parkNanos(this, intervalNanos);
            }
        }
    }

    /**
     * One pass: stamps what is newly free and reports what is ripe, a batch per lock hold, until
     * a batch comes back short. Returns the blocks reported. Runs on the reporter thread (or a
     * test's, with the thread not started).
     */
    int pass() {
        passes.incrementAndGet();
        stamp++;
        if (frames != null) {
            // Frames of a cache idle for the delay have been free for the delay: their blocks are ripe now.
            frames.drainIdleCaches(Math.max(1, agePasses), Math.max(1, stamp - agePasses));
        }
        int total = 0;
        while (!stopped) {
            int n = buddy.isolateForReporting(batch, BATCH, SCAN, stamp, stamp - agePasses);
            if (n == 0) {
                break;
            }
            long ok = 0;
            long mapOk = 0;
            for (int i = 0; i < n; i++) {
                if (report(batch[i])) {
                    ok |= 1L << i;
                    if (reportRecords(batch[i])) {
                        mapOk |= 1L << i;
                    }
                }
            }
            // Every host call of the batch has returned: only now can the blocks be allocated.
            buddy.putBackReported(batch, n, ok, mapOk, zeroes);
            total += Long.bitCount(ok);
            if (n < BATCH) {
                break;
            }
        }
        return total;
    }

    private boolean report(long pfn) {
        int errno = failPoints.shouldFail(FailSite.REPORT) ? -1
                : host.discard(pfn << PageSize.SHIFT, PageSize.HUGE_BYTES);
        if (errno != 0) {
            failedReports.incrementAndGet();
            return false;
        }
        reportedBlocks.incrementAndGet();
        return true;
    }

    /**
     * Gives back the mem_map host pages of isolated block {@code pfn} that hold only tail records:
     * all of its {@link MemMap#BLOCK_RECORD_BYTES} but the first page. True if the host took them.
     */
    private boolean reportRecords(long pfn) {
        if (mapHost == null || mapOff) {
            return false;
        }
        int errno = mapHost.discard(MemMap.recordOffset(pfn) + PageSize.BYTES, MemMap.BLOCK_RECORD_BYTES - PageSize.BYTES);
        if (errno != 0) {
            // EINVAL: host pages larger than 4 KiB, so the records part turns off for good; that is
            // a limit of the host, not a failed report.
            mapOff = errno == EINVAL;
            if (!mapOff) {
                failedReports.incrementAndGet();
            }
            return false;
        }
        return true;
    }

    /** Blocks given back to the host so far. */
    long reportedBlocks() {
        return reportedBlocks.get();
    }

    /**
     * Host calls that failed (or were made to fail): for a block's frames (it stayed unreported)
     * or for its tail records (the block was reported, its struct pages stayed committed).
     */
    long failedReports() {
        return failedReports.get();
    }

    /** Passes so far. */
    long passes() {
        return passes.get();
    }
}
