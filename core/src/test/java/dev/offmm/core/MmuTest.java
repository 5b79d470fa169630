package dev.offmm.core;

import dev.offmm.offheap.PhysicalMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Per-thread contexts: TLB accesses, faults through them, shootdown, atomics, pinning. */
class MmuTest {
    private static final long PAGE = 4096;
    private PhysicalMemory memory;
    private long free;

    @BeforeEach
    void setUp() {
        memory = PhysicalMemory.create(32L << 20);
        free = memory.freeFrameCount();
    }

    @AfterEach
    void tearDown() {
        memory.zone().frames().drainCurrentThread();
        memory.zone().frames().reapDeadCaches();
        memory.zone().lockSlab().shrink();
        long now = memory.freeFrameCount();
        memory.close();
        assertEquals(free, now, "every frame returned");
    }

    static java.util.stream.Stream<VmConfig> modes() {
        return Modes.all();
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldReadAndWriteThroughTheTlbAndFaultTransparently(VmConfig config) {
        try (AddressSpace as = AddressSpace.create(memory, config); Mmu mmu = as.attach()) {
            long a = as.mmap(0, 16 * PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
            assertEquals(0, mmu.getLong(a), "zero page");
            mmu.putLong(a, 0x0102030405060708L);
            assertEquals(0x0102030405060708L, mmu.getLong(a), "COW from the zero page, transparently");
            assertEquals(0x0102030405060708L, as.getLong(a), "the casual path agrees");
            mmu.putInt(a + 12, -5);
            assertEquals(-5, mmu.getInt(a + 12));
            mmu.putByte(a + 3 * PAGE, (byte) 9);
            assertEquals(9, mmu.getByte(a + 3 * PAGE));
            mmu.putLong(a + PAGE - 4, 0x1122334455667788L);
            assertEquals(0x1122334455667788L, mmu.getLong(a + PAGE - 4), "across a page boundary");
            long misses = mmu.tlbMisses();
            for (int i = 0; i < 100; i++) {
                mmu.getLong(a + 8 * (i % 32));
            }
            assertEquals(misses, mmu.tlbMisses(), "hits do not walk");
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldReportFaultsAndMisuse(VmConfig config) {
        try (AddressSpace as = AddressSpace.create(memory, config); Mmu mmu = as.attach()) {
            long a = as.mmap(0, 2 * PAGE, Prot.READ, MapFlags.NONE);
            assertEquals(0, mmu.getLong(a));
            assertEquals(FaultException.Kind.ACCERR, assertThrows(FaultException.class, () -> mmu.putLong(a, 1)).kind());
            assertEquals(FaultException.Kind.MAPERR, assertThrows(FaultException.class, () -> mmu.getLong(a + 2 * PAGE)).kind());
            assertEquals(FaultException.Kind.MAPERR, assertThrows(FaultException.class, () -> mmu.getLong(-8)).kind());
            assertEquals(FaultException.Kind.MAPERR,
                    assertThrows(FaultException.class, () -> mmu.getLong(AddressSpace.USER_END)).kind());
            assertThrows(IllegalArgumentException.class, () -> mmu.compareAndSetLong(a + 4, 0, 1));
            assertThrows(IllegalArgumentException.class, () -> mmu.getLongAcquire(a + 1));
            as.mprotect(a, PAGE, Prot.NONE);
            assertEquals(FaultException.Kind.ACCERR, assertThrows(FaultException.class, () -> mmu.getLong(a)).kind());
            AtomicReference<Throwable> other = new AtomicReference<>();
            Thread t = new Thread(() -> {
                try {
                    mmu.getLong(a + PAGE);
                } catch (Throwable e) {
                    other.set(e);
                }
            });
            t.start();
            join(t);
            assertInstanceOf(WrongThreadException.class, other.get());
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldSeeUnmapAndMprotectOnTheNextAccess(VmConfig config) {
        try (AddressSpace as = AddressSpace.create(memory, config); Mmu mmu = as.attach()) {
            long a = as.mmap(0, 4 * PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
            mmu.putLong(a, 1);
            mmu.putLong(a + PAGE, 2);
            as.mprotect(a, PAGE, Prot.READ);
            assertEquals(FaultException.Kind.ACCERR, assertThrows(FaultException.class, () -> mmu.putLong(a, 3)).kind());
            assertEquals(1, mmu.getLong(a));
            as.madvise(a + PAGE, PAGE, Advice.DONTNEED);
            assertEquals(0, mmu.getLong(a + PAGE), "DONTNEED shot the translation down");
            as.munmap(a, 4 * PAGE);
            assertEquals(FaultException.Kind.MAPERR, assertThrows(FaultException.class, () -> mmu.getLong(a)).kind());
            assertTrue(mmu.tlbFlushes() >= 3);
        }
    }

    @Test
    void shouldCopyBulkAcrossPagesFromArraysAndSegments() {
        try (AddressSpace as = AddressSpace.create(memory, VmConfig.defaults()); Mmu mmu = as.attach();
             Arena arena = Arena.ofConfined()) {
            long a = as.mmap(0, 300 * PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
            byte[] src = new byte[(int) (290 * PAGE) + 17];
            new java.util.Random(3).nextBytes(src);
            mmu.write(a + 5, src, 0, src.length);
            byte[] dst = new byte[src.length];
            mmu.read(a + 5, dst, 0, dst.length);
            assertArrayEquals(src, dst);
            MemorySegment seg = arena.allocate(3 * PAGE);
            mmu.read(a + 5, seg);
            assertEquals(src[100], seg.get(ValueLayout.JAVA_BYTE, 100));
            seg.fill((byte) 7);
            mmu.write(a + PAGE, seg);
            assertEquals(7, as.getByte(a + 4 * PAGE - 1));
            assertThrows(IndexOutOfBoundsException.class, () -> mmu.read(a, dst, -1, 4));
            assertThrows(FaultException.class, () -> mmu.read(a + 299 * PAGE, new byte[(int) (2 * PAGE)], 0, (int) (2 * PAGE)));
        }
    }

    @Test
    void shouldPublishBetweenContextsWithReleaseAndAcquire() {
        try (AddressSpace as = AddressSpace.create(memory, VmConfig.defaults())) {
            long a = as.mmap(0, 64 * PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
            int rounds = 2000;
            AtomicReference<Throwable> failure = new AtomicReference<>();
            Thread consumer = new Thread(() -> {
                try (Mmu mmu = as.attach()) {
                    for (long r = 1; r <= rounds; r++) {
                        while (mmu.getLongAcquire(a) != r) {
                            Thread.onSpinWait();
                        }
                        long page = r % 63 + 1;
                        assertEquals(r * 31, mmu.getLong(a + page * PAGE + 8), "data published before the flag");
                        mmu.putLongRelease(a + 8, r);
                    }
                } catch (Throwable e) {
                    failure.set(e);
                }
            });
            consumer.start();
            try (Mmu mmu = as.attach()) {
                for (long r = 1; r <= rounds && failure.get() == null; r++) {
                    long page = r % 63 + 1;
                    mmu.putLong(a + page * PAGE + 8, r * 31);
                    mmu.putLongRelease(a, r);
                    while (mmu.getLongAcquire(a + 8) != r && consumer.isAlive()) {
                        Thread.onSpinWait();
                    }
                }
            }
            join(consumer);
            assertEquals(null, failure.get());
        }
    }

    @Test
    void shouldCountExactlyWithCompareAndSetAndGetAndAddFromManyThreads() {
        try (AddressSpace as = AddressSpace.create(memory, VmConfig.defaults())) {
            long a = as.mmap(0, PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
            Thread[] ts = new Thread[4];
            for (int t = 0; t < ts.length; t++) {
                ts[t] = new Thread(() -> {
                    try (Mmu mmu = as.attach()) {
                        for (int i = 0; i < 20_000; i++) {
                            mmu.getAndAddLong(a, 1);
                            long v;
                            do {
                                v = mmu.getLongAcquire(a + 8);
                            } while (!mmu.compareAndSetLong(a + 8, v, v + 2));
                        }
                    }
                });
                ts[t].start();
            }
            for (Thread t : ts) {
                join(t);
            }
            assertEquals(80_000, as.getLong(a));
            assertEquals(160_000, as.getLong(a + 8));
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldKeepPinnedFramesAliveAcrossMunmapUntilUnpinned(VmConfig config) {
        try (AddressSpace as = AddressSpace.create(memory, config); Mmu mmu = as.attach()) {
            long a = as.mmap(0, 2 * PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
            mmu.putLong(a, 1234);
            PinnedPage pin = mmu.pin(a + 100, false);
            assertEquals(a, pin.address());
            assertEquals(PAGE, pin.segment().byteSize());
            assertEquals(1234, pin.segment().get(ValueLayout.JAVA_LONG, 0));
            pin.segment().set(ValueLayout.JAVA_LONG, 8, 99);
            assertEquals(99, mmu.getLong(a + 8), "the pinned segment is the mapped frame");
            as.munmap(a, 2 * PAGE);
            assertEquals(1234, pin.segment().get(ValueLayout.JAVA_LONG, 0), "still alive after munmap");
            assertEquals(0, as.stats().pendingFreeFrames(), "the caller's own context is in no access during munmap");
            assertEquals(1234, pin.segment().get(ValueLayout.JAVA_LONG, 0), "and the pin still holds the frame");
            long pinnedFree = memory.freeFrameCount();
            pin.close();
            pin.close();
            assertEquals(pinnedFree + 1, memory.freeFrameCount(), "the unpin freed it");
            assertThrows(IllegalStateException.class, pin::segment);
            long b = as.mmap(0, PAGE, Prot.READ, MapFlags.NONE);
            try (PinnedPage zero = mmu.pin(b, false)) {
                assertTrue(zero.segment().isReadOnly(), "a read pin of an untouched page is the zero page");
            }
            assertEquals(FaultException.Kind.ACCERR, assertThrows(FaultException.class, () -> mmu.pin(b, true)).kind());
        }
    }

    @ParameterizedTest
    @MethodSource("modes")
    void shouldEndThePinnedSegmentWithThePin(VmConfig config) {
        try (AddressSpace as = AddressSpace.create(memory, config); Mmu mmu = as.attach()) {
            long a = as.mmap(0, 16 * PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
            mmu.putLong(a, 7);
            PinnedPage pin = mmu.pin(a, true);
            java.lang.foreign.MemorySegment kept = pin.segment();
            kept.set(ValueLayout.JAVA_LONG, 8, 8);
            pin.close();
            assertThrows(IllegalStateException.class, () -> kept.get(ValueLayout.JAVA_LONG, 0), "a read after unpin");
            as.munmap(a, 16 * PAGE);
            long b = as.mmap(0, 16 * PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
            for (int p = 0; p < 16; p++) {
                mmu.putLong(b + p * PAGE, p + 1);
            }
            assertThrows(IllegalStateException.class, () -> kept.set(ValueLayout.JAVA_LONG, 0, -1L), "a write after unpin");
            for (int p = 0; p < 16; p++) {
                assertEquals(p + 1, mmu.getLong(b + p * PAGE), "another mapping's page " + p + " is intact");
            }
            try (PinnedPage zero = mmu.pin(as.mmap(0, PAGE, Prot.READ, MapFlags.NONE), false)) {
                assertTrue(zero.segment().isReadOnly(), "the zero page is pinned read-only");
                assertThrows(IllegalArgumentException.class, () -> zero.segment().set(ValueLayout.JAVA_BYTE, 0, (byte) 1));
            }
        }
    }

    @Test
    void shouldConfineAPinToTheThreadThatTookIt() throws Exception {
        try (AddressSpace as = AddressSpace.create(memory, VmConfig.defaults()); Mmu mmu = as.attach()) {
            long a = as.mmap(0, PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
            try (PinnedPage pin = mmu.pin(a, true)) {
                java.util.concurrent.atomic.AtomicReference<Throwable> seen = new java.util.concurrent.atomic.AtomicReference<>();
                Thread other = new Thread(() -> {
                    try {
                        pin.segment().get(ValueLayout.JAVA_LONG, 0);
                    } catch (Throwable e) {
                        seen.set(e);
                    }
                });
                other.start();
                other.join();
                assertTrue(seen.get() instanceof WrongThreadException, String.valueOf(seen.get()));
            }
        }
    }

    /**
     * Another thread's misuse of an Mmu fails with WrongThreadException and leaves the owner's
     * access alone: while the owner is inside a bulk copy (held there by the test hook), the
     * intruder's calls must not mark the owner's slot idle, or an unmap would free the frames the
     * owner is about to copy through.
     */
    @Test
    void shouldLeaveTheOwnersAccessAloneWhenAnotherThreadMisusesItsMmu() throws Exception {
        try (AddressSpace as = AddressSpace.create(memory, VmConfig.defaults())) {
            long a = as.mmap(0, 4 * PAGE, Prot.READ | Prot.WRITE, MapFlags.POPULATE);
            java.util.concurrent.CountDownLatch inside = new java.util.concurrent.CountDownLatch(1);
            java.util.concurrent.CountDownLatch resume = new java.util.concurrent.CountDownLatch(1);
            Mmu[] owned = new Mmu[1];
            Thread owner = new Thread(() -> {
                try (Mmu mmu = as.attach()) {
                    owned[0] = mmu;
                    mmu.afterFirstBulkTranslationForTesting(() -> {
                        inside.countDown();
                        try {
                            resume.await();
                        } catch (InterruptedException e) {
                            throw new AssertionError(e);
                        }
                    });
                    // Two pages: a copy within one page takes the single-page path, which has no hook.
                    mmu.read(a, new byte[(int) PAGE + 16], 0, (int) PAGE + 16);
                }
            });
            owner.start();
            inside.await();
            Mmu theirs = owned[0];
            byte[] buf = new byte[16];
            assertThrows(WrongThreadException.class, () -> theirs.getLong(a));
            assertThrows(WrongThreadException.class, () -> theirs.read(a, buf, 0, 16));
            assertThrows(WrongThreadException.class, () -> theirs.putLong(a + PAGE - 4, 1));
            assertThrows(WrongThreadException.class, () -> theirs.pin(a, false));
            as.munmap(a, PAGE);
            assertTrue(as.stats().pendingFreeFrames() > 0, "the owner is still inside its access: the frame must wait");
            resume.countDown();
            owner.join();
        }
    }

    @Test
    void shouldRefuseToPinThroughAClosedMmu() {
        try (AddressSpace as = AddressSpace.create(memory, VmConfig.defaults())) {
            long a = as.mmap(0, PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
            Mmu mmu = as.attach();
            mmu.close();
            assertTrue(assertThrows(IllegalStateException.class, () -> mmu.pin(a, true)).getMessage().contains("closed"));
        }
    }

    @Test
    void shouldKeepAPinnedFrameValidPastTheCloseOfItsMemoryAndReportIt() {
        PhysicalMemory own = PhysicalMemory.create(4L << 20);
        AddressSpace as = AddressSpace.create(own, VmConfig.defaults());
        Mmu mmu = as.attach();
        long a = as.mmap(0, PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
        mmu.putLong(a, 42);
        PinnedPage pin = mmu.pin(a, false);
        IllegalStateException e = assertThrows(IllegalStateException.class, own::close);
        assertTrue(e.getMessage().contains("1 pinned pages still open"), e.getMessage());
        assertTrue(as.isClosed() && own.isClosed());
        assertEquals(42, pin.segment().get(ValueLayout.JAVA_LONG, 0), "the region outlives the memory until the pin closes");
        pin.close();
        mmu.close();
        assertDoesNotThrow(own::close);
    }

    /**
     * Between accesses a context holds nothing back, whatever its thread does: here one is
     * attached and parked (never idle), another died without closing its context. munmap's frames
     * are free again as soon as munmap returns, and the parked context's next access catches up
     * by itself (its TLB still held the unmapped page).
     */
    @Test
    void shouldNotHoldReclamationBackBetweenAccessesWhateverTheThreadDoes() throws Exception {
        try (AddressSpace as = AddressSpace.create(memory, VmConfig.defaults())) {
            long a = as.mmap(0, 8 * PAGE, Prot.READ | Prot.WRITE, MapFlags.NONE);
            java.util.concurrent.SynchronousQueue<String> toOther = new java.util.concurrent.SynchronousQueue<>();
            java.util.concurrent.SynchronousQueue<String> fromOther = new java.util.concurrent.SynchronousQueue<>();
            Thread other = new Thread(() -> {
                try (Mmu mmu = as.attach()) {
                    mmu.putLong(a, 1);
                    fromOther.put("parked");
                    assertEquals("access", toOther.take());
                    assertEquals(FaultException.Kind.MAPERR, assertThrows(FaultException.class, () -> mmu.getLong(a)).kind(),
                            "the stale translation of the unmapped page was dropped");
                    mmu.putLong(a + 5 * PAGE, 3);
                    assertEquals(3, mmu.getLong(a + 5 * PAGE));
                    fromOther.put("done");
                } catch (InterruptedException e) {
                    throw new AssertionError(e);
                }
            });
            other.start();
            assertEquals("parked", fromOther.take());
            Thread dead = new Thread(() -> as.attach().putLong(a + PAGE, 2));
            dead.start();
            join(dead);
            long free = memory.freeFrameCount();
            as.munmap(a, 4 * PAGE);
            assertEquals(0, as.stats().pendingFreeFrames(), "a parked context and a dead one hold nothing");
            assertTrue(memory.freeFrameCount() > free, "the frames are back");
            toOther.put("access");
            assertEquals("done", fromOther.take());
            join(other);
        }
    }

    private static void join(Thread t) {
        try {
            t.join();
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
    }
}
