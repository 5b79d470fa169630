package dev.offmm.core;

import dev.offmm.offheap.PhysicalMemory;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The safety property of shootdown plus grace periods, tested so that it can fail.
 *
 * <p>Writers keep streaming tagged bytes into region R through their TLBs. A remapper unmaps R,
 * maps a fresh region S, fills it with its own pattern (its faults take frames from its
 * per-thread cache, where R's frames go first when they are freed), gives the writers time,
 * and checks S. Forbidden outcome: any byte of S that is not the pattern, which can only be a
 * writer's late write through a stale translation into a frame that was handed on. With the
 * grace period it never happens. Whether the check would see it is shown by a forced interleaving
 * against the broken variant (grace period disabled), which must corrupt S every time.
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
    private static Outcome run(VmConfig config, int rounds) {
        try (PhysicalMemory memory = PhysicalMemory.create(64L << 20)) {
            Outcome outcome;
            try (AddressSpace as = AddressSpace.create(memory, config)) {
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
                    for (int i = 0; i < rounds; i++) {
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
                if (!outcome.clean()) {
                    throw new AssertionError("forbidden outcome: " + outcome, outcome.firstError());
                }
            }
            return outcome;
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldNeverLetALateWriteReachAFrameHandedOn(VmConfig config) {
        Outcome outcome = run(config, 150);
        assertTrue(outcome.clean(), "bytes of S overwritten by writes to unmapped R: " + outcome);
    }

    /**
     * The same property, with the interleaving forced instead of hoped for: a writer translates
     * the first page of R for a bulk write and is held inside that access (a test hook between
     * translating and copying); meanwhile R is unmapped, S mapped and filled; then the writer
     * copies that page through its stale translation (the next page faults MAPERR). With the
     * grace period the unmap's frames wait for the writer's access to end, so S never gets them
     * and stays intact; without it (the broken variant) S is given R's frames and the late write
     * lands in S. Both outcomes are deterministic, so the control
     * cannot pass by luck and the correct variant cannot fail by luck.
     */
    @ParameterizedTest
    @MethodSource("modes")
    void shouldHoldTheFramesOfAnUnmapForAnAccessInProgressAndNotWithoutTheGracePeriod(VmConfig config) throws Exception {
        assertEquals(0, forcedLateWrite(config, false), "a late write through a stale translation reached S");
        assertTrue(forcedLateWrite(config, true) > 0, "the broken variant went unnoticed");
    }

    /** Runs the forced interleaving; returns how many bytes of S the late write changed. */
    private static long forcedLateWrite(VmConfig config, boolean broken) throws Exception {
        try (PhysicalMemory memory = PhysicalMemory.create(16L << 20);
             AddressSpace as = AddressSpace.create(memory, config)) {
            if (broken) {
                as.services().reclaimer().disableGracePeriodForTesting();
            }
            as.mmap(R, PAGES * PAGE, Prot.READ | Prot.WRITE, MapFlags.FIXED | MapFlags.POPULATE);
            java.util.concurrent.CountDownLatch inside = new java.util.concurrent.CountDownLatch(1);
            java.util.concurrent.CountDownLatch resume = new java.util.concurrent.CountDownLatch(1);
            java.util.concurrent.atomic.AtomicReference<Throwable> failure = new java.util.concurrent.atomic.AtomicReference<>();
            Thread writer = new Thread(() -> {
                try (Mmu mmu = as.attach()) {
                    byte[] buf = new byte[(int) (PAGES * PAGE)];
                    java.util.Arrays.fill(buf, (byte) 0x11);
                    mmu.afterFirstBulkTranslationForTesting(() -> {
                        inside.countDown();
                        try {
                            resume.await();
                        } catch (InterruptedException e) {
                            throw new AssertionError(e);
                        }
                    });
                    mmu.write(R, buf, 0, buf.length);
                } catch (Throwable e) {
                    failure.set(e);
                }
            });
            writer.start();
            inside.await();
            as.munmap(R, PAGES * PAGE);
            as.mmap(S, PAGES * PAGE, Prot.READ | Prot.WRITE, MapFlags.FIXED);
            byte[] fill = new byte[(int) (PAGES * PAGE)];
            java.util.Arrays.fill(fill, (byte) 0x55);
            as.write(S, fill, 0, fill.length);
            resume.countDown();
            writer.join();
            if (!(failure.get() instanceof FaultException f && f.kind() == FaultException.Kind.MAPERR
                    && f.bytesCopied() == PAGE)) {
                throw new AssertionError("the writer should copy its first page, then fault MAPERR on R", failure.get());
            }
            byte[] check = new byte[fill.length];
            as.read(S, check, 0, check.length);
            long changed = 0;
            for (byte b : check) {
                changed += b != 0x55 ? 1 : 0;
            }
            as.munmap(S, PAGES * PAGE);
            return changed;
        }
    }
}
