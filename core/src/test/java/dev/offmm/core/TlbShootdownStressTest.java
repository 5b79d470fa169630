package dev.offmm.core;

import dev.offmm.offheap.PhysicalMemory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The safety property of shootdown plus grace periods, tested so that it can fail.
 *
 * <p>Writers keep streaming tagged bytes into region R through their TLBs. A remapper unmaps R,
 * maps a fresh region S, fills it with its own pattern (its faults take frames from its
 * per-thread cache, where R's frames go first when they are freed), gives the writers time,
 * and checks S. Forbidden outcome: any byte of S that is not the pattern, which can only be a
 * writer's late write through a stale translation into a frame that was handed on. With the
 * grace period it never happens; with the grace period disabled (the broken variant) the test
 * must see it.
 */
class TlbShootdownStressTest {
    private static final long PAGE = 4096;
    private static final int PAGES = 64;
    private static final long R = 0x10000000L;
    private static final long S = 0x20000000L;

    static java.util.stream.Stream<VmConfig> modes() {
        return Modes.all();
    }

    /** What one run saw: corrupted bytes of S, and writer failures other than MAPERR. */
    private record Outcome(long corruptedBytes, long writerErrors, Throwable firstError) {
        boolean clean() {
            return corruptedBytes == 0 && writerErrors == 0;
        }
    }

    /** Runs the scenario. */
    private static Outcome run(VmConfig config, boolean broken, int rounds, boolean stopAtFirst) {
        try (PhysicalMemory memory = PhysicalMemory.create(64L << 20)) {
            Outcome outcome;
            try (AddressSpace as = AddressSpace.create(memory, config)) {
                if (broken) {
                    as.services().reclaimer().disableGracePeriodForTesting();
                }
                as.mmap(R, PAGES * PAGE, Prot.READ | Prot.WRITE, MapFlags.FIXED);
                AtomicBoolean stop = new AtomicBoolean();
                AtomicLong bad = new AtomicLong();
                ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
                Thread[] writers = new Thread[2];
                for (int w = 0; w < writers.length; w++) {
                    byte tag = (byte) (0x10 + w);
                    writers[w] = new Thread(() -> {
                        byte[] buf = new byte[(int) (PAGES * PAGE)];
                        java.util.Arrays.fill(buf, tag);
                        try (Mmu mmu = as.attach()) {
                            while (!stop.get()) {
                                try {
                                    mmu.write(R, buf, 0, buf.length);
                                } catch (FaultException e) {
                                    if (e.kind() != FaultException.Kind.MAPERR) {
                                        throw e;
                                    }
                                    Thread.onSpinWait();
                                }
                            }
                        } catch (Throwable e) {
                            errors.add(e);
                        }
                    });
                    writers[w].start();
                }
                try (Mmu mmu = as.attach()) {
                    byte[] check = new byte[(int) (PAGES * PAGE)];
                    for (int i = 0; i < rounds && !(stopAtFirst && (bad.get() > 0 || !errors.isEmpty())); i++) {
                        as.munmap(R, PAGES * PAGE);
                        as.mmap(S, PAGES * PAGE, Prot.READ | Prot.WRITE, MapFlags.FIXED);
                        byte pattern = (byte) (0x40 + (i & 0x3f));
                        byte[] fill = new byte[check.length];
                        java.util.Arrays.fill(fill, pattern);
                        mmu.write(S, fill, 0, fill.length);
                        long until = System.nanoTime() + 200_000;
                        while (System.nanoTime() < until) {
                            Thread.onSpinWait();
                        }
                        mmu.read(S, check, 0, check.length);
                        for (byte b : check) {
                            if (b != pattern) {
                                bad.incrementAndGet();
                            }
                        }
                        as.munmap(S, PAGES * PAGE);
                        as.mmap(R, PAGES * PAGE, Prot.READ | Prot.WRITE, MapFlags.FIXED);
                    }
                } finally {
                    stop.set(true);
                    for (Thread t : writers) {
                        try {
                            t.join();
                        } catch (InterruptedException e) {
                            throw new AssertionError(e);
                        }
                    }
                }
                outcome = new Outcome(bad.get(), errors.size(), errors.peek());
                if (!broken && !outcome.clean()) {
                    throw new AssertionError("forbidden outcome: " + outcome, outcome.firstError());
                }
            }
            return outcome;
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldNeverLetALateWriteReachAFrameHandedOn(VmConfig config) {
        Outcome outcome = run(config, false, 150, false);
        assertTrue(outcome.clean(), "bytes of S overwritten by writes to unmapped R: " + outcome);
    }

    @Test
    void shouldCatchReclamationWithoutTheGracePeriod() {
        // The control: the same test against the broken variant must fail. Writers' bulk copies
        // translate 64 pages up front and then stream for tens of microseconds, so a frame freed
        // without waiting for them is overwritten after it was handed to S.
        // Caught either as overwritten bytes of S or as a writer walking a page table whose frame
        // was reused (garbage translation: FFM's bounds check stops it, never a JVM crash).
        Outcome outcome = new Outcome(0, 0, null);
        for (int attempt = 0; attempt < 5 && outcome.clean(); attempt++) {
            try {
                outcome = run(VmConfig.defaults(), true, 2000, true);
            } catch (RuntimeException | AssertionError e) {
                // The corruption reached the unmapping thread itself (a freed table reused).
                outcome = new Outcome(0, 1, e);
            }
        }
        assertTrue(!outcome.clean(), "the broken variant went unnoticed");
    }
}
