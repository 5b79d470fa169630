package dev.offmm.offheap.lock;

import dev.offmm.offheap.LockClass;

/**
 * A snapshot of one debug lock.
 *
 * @param lockClass    what the lock guards
 * @param holder       the holder's thread id, or 0
 * @param acquisitions acquisitions so far
 * @param contentions  acquisitions that had to wait
 * @param maxHoldNanos the longest sampled hold
 */
public record LockInfo(LockClass lockClass, long holder, long acquisitions, long contentions, long maxHoldNanos) {
}
