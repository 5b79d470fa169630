package dev.offmm.bench.offheap;

import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.frame.BuddyAllocator;
import dev.offmm.offheap.frame.FrameAllocator;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;

/**
 * One frame allocated and freed: order 0 through the per-thread cache, order 9 (2 MiB) through
 * the buddy allocator's zone lock, against the FFM ways of getting 4 KiB: an arena per
 * allocation (shared or confined) and a slice of one big segment.
 *
 * <p>All threads share one {@link PhysicalMemory}; with {@code @Threads(2)} each thread has its
 * own frame cache, while order 9 contends on the zone lock.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
public class FrameAllocBenchmark {
    private static final long PAGE = PhysicalMemory.PAGE_SIZE;

    /** The memory every thread allocates from. */
    @State(Scope.Benchmark)
    public static class Memory {
        PhysicalMemory memory;
        FrameAllocator frames;

        /** 64 MiB: 31 free order-9 blocks, plenty for two threads. */
        @Setup(Level.Trial)
        public void setUp() {
            memory = PhysicalMemory.create(64L << 20);
            frames = memory.zone().frames();
        }

        /** Fails the run if a frame leaked. */
        @TearDown(Level.Trial)
        public void tearDown() {
            frames.reapDeadCaches();
            long used = memory.usedFrameCount();
            memory.close();
            if (used != 0) {
                throw new IllegalStateException(used + " frames leaked");
            }
        }
    }

    /** One big segment per thread to slice from, the cheapest FFM way to 4 KiB. */
    @State(Scope.Thread)
    public static class Slab {
        Arena arena;
        MemorySegment big;
        long offset;

        /** A 64 MiB confined segment. */
        @Setup(Level.Trial)
        public void setUp() {
            arena = Arena.ofConfined();
            big = arena.allocate(64L << 20, PAGE);
        }

        /** Releases the segment. */
        @TearDown(Level.Trial)
        public void tearDown() {
            arena.close();
        }
    }

    private static long order0(Memory m) {
        long pfn = m.frames.allocFrame();
        m.frames.freeFrame(pfn);
        return pfn;
    }

    private static long order9(Memory m) {
        long pfn = m.frames.allocFrames(BuddyAllocator.MAX_ORDER);
        m.frames.freeFrames(pfn, BuddyAllocator.MAX_ORDER);
        return pfn;
    }

    /** Order 0 alloc + free from the calling thread's cache. */
    @Benchmark
    @Threads(1)
    public long order0AllocFree(Memory m) {
        return order0(m);
    }

    /** The same, two threads, each with its own cache. */
    @Benchmark
    @Threads(2)
    public long order0AllocFreeTwoThreads(Memory m) {
        return order0(m);
    }

    /** Order 9 (2 MiB) alloc + free through the buddy allocator. */
    @Benchmark
    @Threads(1)
    public long order9AllocFree(Memory m) {
        return order9(m);
    }

    /** The same, two threads on one zone lock. */
    @Benchmark
    @Threads(2)
    public long order9AllocFreeTwoThreads(Memory m) {
        return order9(m);
    }

    /** Baseline: a shared arena per 4 KiB; closing it is a handshake with every thread. */
    @Benchmark
    @Threads(1)
    public long arenaSharedAllocateClose() {
        try (Arena arena = Arena.ofShared()) {
            return arena.allocate(PAGE).address();
        }
    }

    /** Baseline: a confined arena per 4 KiB (malloc + zeroing + free). */
    @Benchmark
    @Threads(1)
    public long arenaConfinedAllocateClose() {
        try (Arena arena = Arena.ofConfined()) {
            return arena.allocate(PAGE).address();
        }
    }

    /** Baseline: a 4 KiB slice of one big segment (escaping, so it is really created). */
    @Benchmark
    @Threads(1)
    public MemorySegment sliceOfBigSegment(Slab s) {
        long off = s.offset;
        s.offset = off + PAGE == s.big.byteSize() ? 0 : off + PAGE;
        return s.big.asSlice(off, PAGE);
    }
}
