package dev.offmm.offheap.frame;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.LockSupport;

/**
 * The buddy allocator's zone lock: a three-state mutex (Drepper's "futexes are tricky", mutex 2)
 * that spins briefly before it parks, like the kernel's {@code zone->lock} with optimistic
 * spinning. A refill or drain holds it for a batch (a microsecond or two), so a waiter that
 * spins usually gets it without the two scheduler round trips a park and an unpark cost.
 *
 * <p>The state word sits alone on its cache lines (padding on both sides): the fields of
 * whatever the allocator reads on every allocation are never on the line every acquisition
 * writes. Not reentrant, not fair; an interrupt does not abort an acquisition (it is kept).
 */
final class ZoneLock extends ZoneLockFields {
    private static final long UNLOCKED = 0;
    private static final long LOCKED = 1;
    /** Locked, and a thread may be parked waiting. */
    private static final long CONTENDED = 2;
    /** Spins of about 40-140 cycles each: a few microseconds, longer than a batch holds the lock. */
    static final int SPINS = 128;
    private static final VarHandle STATE;

    static {
        try {
            STATE = MethodHandles.lookup().findVarHandle(ZoneLockState.class, "state", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final ConcurrentLinkedQueue<Thread> waiters = new ConcurrentLinkedQueue<>();
    /** Acquisitions that found the lock held; LongAdder cells are padded themselves. */
    private final LongAdder contended = new LongAdder();

    /** Acquires (a volatile CAS: acquire semantics and more). */
    void lock() {
        if (!STATE.compareAndSet(this, UNLOCKED, LOCKED)) {
            lockContended();
        }
    }

    private void lockContended() {
        contended.increment();
        for (int i = 0; i < SPINS; i++) {
            Thread.onSpinWait();
            // Test before test-and-set: a plain-ish read first keeps the line shared while held.
            if ((long) STATE.getOpaque(this) == UNLOCKED && STATE.compareAndSet(this, UNLOCKED, LOCKED)) {
                return;
            }
        }
        Thread me = Thread.currentThread();
        // Enqueued before the state says CONTENDED, so an unlock that sees CONTENDED sees a waiter.
        waiters.add(me);
        boolean interrupted = false;
        while ((long) STATE.getAndSet(this, CONTENDED) != UNLOCKED) {
            LockSupport.park(this);
            // park returns at once while the interrupt flag is set: clear it, restore it at the end.
            interrupted |= Thread.interrupted();
        }
        waiters.remove(me);
        if (interrupted) {
            me.interrupt();
        }
    }

    /** Releases (a volatile getAndSet: release semantics); wakes one waiter if any may park. */
    void unlock() {
        if ((long) STATE.getAndSet(this, UNLOCKED) == CONTENDED) {
            Thread next = waiters.peek();
            if (next != null) {
                LockSupport.unpark(next);
            }
        }
    }

    /** Whether some thread holds it (volatile load; for assertions and statistics). */
    boolean isLocked() {
        return (long) STATE.getVolatile(this) != UNLOCKED;
    }

    /** Acquisitions so far that found the lock held. */
    long contendedAcquisitions() {
        return contended.sum();
    }
}

/** Padding before the state word: two cache lines, against adjacent-line prefetch. */
abstract class ZoneLockPadBefore {
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

/** The state word. */
abstract class ZoneLockState extends ZoneLockPadBefore {
    /**
     * UNLOCKED, LOCKED or CONTENDED; accessed only through ZoneLock's VarHandle. A long, not an
     * int: the JVM would place an int in the 4-byte gap after the object header, ahead of the
     * padding (LayoutTest caught it).
     */
    long state;
}

/** Padding after the state word. */
abstract class ZoneLockFields extends ZoneLockState {
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
