package dev.offmm.bench.arena;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.Mmu;
import dev.offmm.core.VmConfig;
import dev.offmm.examples.arena.ReserveCommitArena;
import dev.offmm.offheap.PhysicalMemory;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.TimeUnit;

/**
 * One op: allocate {@code total} bytes (64 MiB) in blocks of {@code blockSize} (4 KiB, 64 KiB,
 * 1 MiB; 8-byte aligned), touch every 4 KiB page of every block once (one 8-byte store), then
 * reset, so that the next op starts from no resident memory where the arena allows it. In one run:
 * <ul>
 *   <li>{@code offmm}: {@link ReserveCommitArena} (1 GiB reserved, committed 2 MiB at a time,
 *       stores through the thread's {@code Mmu}; each first touch is an offmm zero-fill fault),
 *       reset = {@link ReserveCommitArena#reset()}: every page and, unless {@code keepTables},
 *       every page table goes; the reservation stays. {@code config=thp} asks for offmm's
 *       transparent huge pages: one fault zeroes 2 MiB.</li>
 *   <li>{@code confinedSlicing}: {@code Arena.ofConfined()} and
 *       {@code SegmentAllocator.slicingAllocator(arena.allocate(total))}; reset = close the arena
 *       (glibc {@code munmap}s the 64 MiB) and open a new one next op. FFM zeroes the segment at
 *       allocate, so the host's page faults happen there.</li>
 *   <li>{@code confinedSlicingReused}: one confined segment for the whole trial; reset = a new
 *       slicing allocator over it. Nothing is given back and nothing is zeroed (blocks hold the
 *       last op's bytes): a floor, not a like-for-like peer. {@code confinedSlicingReusedFill}
 *       zeroes the segment as its reset, which is what handing out zeroed memory costs it.</li>
 *   <li>{@code sharedPerBlock}: {@code Arena.ofShared()}, {@code arena.allocate(blockSize, 8)} per
 *       block (malloc and zeroing each), reset = close.</li>
 * </ul>
 * Single-threaded ({@code -t 1}); the offmm arena is safe for many allocating threads, but this
 * measures the path a confined FFM arena is built for. offmm's memory reports freed frames to the
 * host after the default 2 s, so within a trial its frames are reused hot (no host fault after
 * the first op); the kernel baselines pay the host's faults every op.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
public class ArenaBenchmark {
    private static final long PAGE = 4096;
    private static final long ALIGN = 8;

    /** The workload every side runs. */
    @State(Scope.Thread)
    public static class Sizes {
        /** Bytes per block. */
        @Param({"4096", "65536", "1048576"})
        public long blockSize;

        /** Bytes allocated (and touched) per op. */
        @Param({"67108864"})
        public long total;

        /** Validates. */
        @Setup(Level.Trial)
        public void check() {
            if (blockSize <= 0 || blockSize % PAGE != 0 || total % blockSize != 0) {
                throw new IllegalArgumentException("blockSize=" + blockSize + ", total=" + total
                        + " (expected a multiple of 4096 dividing total)");
            }
        }
    }

    /** offmm's memory, space, context and arena. */
    @State(Scope.Thread)
    public static class Offmm {
        /**
         * {@code default}: 4 KiB pages, reset maps the range afresh (pages and page tables go);
         * {@code keepTables}: 4 KiB pages, reset is {@code DONTNEED} + {@code mprotect} (tables stay);
         * {@code thp}: transparent huge pages (one fault and one free per 2 MiB), default reset.
         */
        @Param({"default", "keepTables", "thp"})
        public String config;

        PhysicalMemory memory;
        AddressSpace as;
        Mmu mmu;
        ReserveCommitArena arena;

        /** Memory for one op's pages plus tables and slack; 1 GiB reserved. */
        @Setup(Level.Trial)
        public void setUp(Sizes s) {
            long huge = PhysicalMemory.HUGE_PAGE_SIZE;
            memory = PhysicalMemory.create((s.total + s.total / 8 + (16L << 20) + huge - 1) & -huge);
            as = AddressSpace.create(memory, VmConfig.defaults());
            mmu = as.attach();
            if (!config.equals("default") && !config.equals("keepTables") && !config.equals("thp")) {
                throw new IllegalArgumentException("config=" + config + " (expected default, keepTables or thp)");
            }
            arena = ReserveCommitArena.builder(as).reserve(Math.max(1L << 30, 4 * s.total))
                    .keepPageTables(config.equals("keepTables")).hugePages(config.equals("thp")).build();
        }

        /** Checks that the last reset left nothing resident, then closes all (offmm checks for leaks). */
        @TearDown(Level.Trial)
        public void tearDown() {
            long rss = as.stats().rssPages();
            long thp = as.stats().faults("thp");
            arena.close();
            mmu.close();
            as.close();
            memory.close();
            if (rss != 0) {
                throw new IllegalStateException(rss + " pages resident after reset");
            }
            if (config.equals("thp") && thp == 0) {
                throw new IllegalStateException("config=thp mapped no huge page");
            }
        }
    }

    /** The segment the reused slicing allocators slice. */
    @State(Scope.Thread)
    public static class Reused {
        Arena arena;
        MemorySegment segment;

        /** Allocates (and so zeroes and commits) the segment once. */
        @Setup(Level.Trial)
        public void setUp(Sizes s) {
            arena = Arena.ofConfined();
            segment = arena.allocate(s.total, PAGE);
        }

        /** Frees it. */
        @TearDown(Level.Trial)
        public void tearDown() {
            arena.close();
        }
    }

    /** offmm: allocate, touch through the Mmu, reset. */
    @Benchmark
    public long offmm(Sizes s, Offmm o) {
        ReserveCommitArena arena = o.arena;
        Mmu mmu = o.mmu;
        long block = s.blockSize;
        long last = 0;
        for (long done = 0; done < s.total; done += block) {
            long a = arena.allocate(block, ALIGN);
            for (long off = 0; off < block; off += PAGE) {
                mmu.putLong(a + off, off);
            }
            last = a;
        }
        arena.reset();
        return last;
    }

    /** Confined arena + slicing allocator; reset = close. */
    @Benchmark
    public long confinedSlicing(Sizes s) {
        long last;
        try (Arena arena = Arena.ofConfined()) {
            last = touchAll(SegmentAllocator.slicingAllocator(arena.allocate(s.total)), s);
        }
        return last;
    }

    /** One confined segment for the trial; reset = a new slicing allocator (keeps RSS, no zeroing). */
    @Benchmark
    public long confinedSlicingReused(Sizes s, Reused r) {
        return touchAll(SegmentAllocator.slicingAllocator(r.segment), s);
    }

    /** One confined segment for the trial; reset = zero it and a new slicing allocator (keeps RSS). */
    @Benchmark
    public long confinedSlicingReusedFill(Sizes s, Reused r) {
        long last = touchAll(SegmentAllocator.slicingAllocator(r.segment), s);
        r.segment.fill((byte) 0);
        return last;
    }

    /** Shared arena, one allocation per block; reset = close. */
    @Benchmark
    public long sharedPerBlock(Sizes s) {
        long last;
        try (Arena arena = Arena.ofShared()) {
            last = touchAll(arena, s);
        }
        return last;
    }

    private static long touchAll(SegmentAllocator allocator, Sizes s) {
        long block = s.blockSize;
        long last = 0;
        for (long done = 0; done < s.total; done += block) {
            MemorySegment m = allocator.allocate(block, ALIGN);
            for (long off = 0; off < block; off += PAGE) {
                m.set(ValueLayout.JAVA_LONG_UNALIGNED, off, off);
            }
            last = m.address();
        }
        return last;
    }
}
