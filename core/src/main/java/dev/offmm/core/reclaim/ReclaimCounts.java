package dev.offmm.core.reclaim;

/**
 * The {@link Reclaimer}'s frame counts, alone on their cache lines (two lines of padding on each
 * side): every allocation reads {@code releasedFrames}, so the line must change only when a
 * release changes it, never because a neighbouring field or object was written. Written under
 * the reclaimer's {@code pending} monitor; read with volatile loads by anyone.
 */
final class ReclaimCounts extends ReclaimCountsPadAfter {
}

/** Padding before the counts. */
abstract class ReclaimCountsPadBefore {
    long p00;
    long p01;
    long p02;
    long p03;
    long p04;
    long p05;
    long p06;
    long p07;
    long p08;
    long p09;
    long p10;
    long p11;
    long p12;
    long p13;
    long p14;
    long p15;
}

/** The counts. */
abstract class ReclaimCountsValues extends ReclaimCountsPadBefore {
    /** Frames retired and not yet released. */
    volatile long pendingFrames;
    /** Frames released so far, ever (monotonic). */
    volatile long releasedFrames;
    /**
     * The largest generation retired before a barrier that has completed began: batches up to it
     * need no barrier of their own. Monotonic.
     */
    volatile long barrierCovers;
    /** {@link System#nanoTime()} when the last barrier completed. */
    volatile long lastBarrierNanos;
}

/** Padding after the counts. */
abstract class ReclaimCountsPadAfter extends ReclaimCountsValues {
    long q00;
    long q01;
    long q02;
    long q03;
    long q04;
    long q05;
    long q06;
    long q07;
    long q08;
    long q09;
    long q10;
    long q11;
    long q12;
    long q13;
    long q14;
    long q15;
}
