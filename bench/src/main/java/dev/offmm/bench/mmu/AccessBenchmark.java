package dev.offmm.bench.mmu;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Mmu;
import dev.offmm.core.PinnedPage;
import dev.offmm.core.Prot;
import dev.offmm.core.VmConfig;
import dev.offmm.offheap.PhysicalMemory;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.TimeUnit;

/**
 * Access costs through a per-thread {@link Mmu}: a TLB hit ({@code getLong}/{@code putLong} on
 * one page), a TLB miss that walks (strided over 4096 resident pages, far more than the 64 TLB
 * entries, so every access walks), and a pinned page's segment, each beside
 * {@code MemorySegment.get} on a plain segment in the same run; and random reads over 256 MiB,
 * where the TLB misses almost always. {@code hostHugePages}: the physical memory's frame region is
 * advised {@code MADV_HUGEPAGE}, so the host backs it with 2 MiB pages (the plain segment is not).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
@State(Scope.Thread)
public class AccessBenchmark {
    private static final int PAGES = 4096;
    private static final int STEPS = 1024;
    private static final long BIG = 256L << 20;

    /** Whether the frame region is backed by host huge pages. */
    @Param({"false", "true"})
    public boolean hostHugePages;

    private PhysicalMemory memory;
    private AddressSpace as;
    private Mmu mmu;
    private PinnedPage pinned;
    private MemorySegment pinnedSegment;
    private Arena arena;
    private MemorySegment plain;
    private long base;
    private long offset;
    private long bigBase;
    private MemorySegment bigPlain;
    private long seed = 0x9E3779B97F4A7C15L;

    /** Maps and touches 16 MiB, pins one page, attaches this thread. */
    @Setup(Level.Trial)
    public void setUp() {
        memory = PhysicalMemory.builder().bytes(BIG + (128L << 20)).hostHugePages(hostHugePages).build();
        as = AddressSpace.create(memory, VmConfig.defaults());
        mmu = as.attach();
        base = as.mmap(0, (long) PAGES * 4096, Prot.READ | Prot.WRITE, MapFlags.POPULATE);
        bigBase = as.mmap(0, BIG, Prot.READ | Prot.WRITE, MapFlags.NONE);
        for (long off = 0; off < BIG; off += 4096) {
            mmu.putLong(bigBase + off, off); // a frame of its own for every page, not the zero page
        }
        pinned = mmu.pin(base, true);
        pinnedSegment = pinned.segment();
        arena = Arena.ofShared();
        plain = arena.allocate((long) PAGES * 4096, 4096);
        bigPlain = arena.allocate(BIG, 4096);
    }

    /** Unpins, detaches, closes (verifying no leak). */
    @TearDown(Level.Trial)
    public void tearDown() {
        pinned.close();
        mmu.close();
        as.close();
        memory.close();
        arena.close();
    }

    /** TLB hit: a long from a page the TLB holds. */
    @Benchmark
    public long tlbHitGetLong() {
        offset = (offset + 8) & 4095;
        return mmu.getLong(base + offset);
    }

    /** TLB hit: a long into a page the TLB holds. */
    @Benchmark
    public void tlbHitPutLong() {
        offset = (offset + 8) & 4095;
        mmu.putLong(base + offset, offset);
    }

    private long nextRandomOffset() {
        long x = seed;
        x ^= x << 13;
        x ^= x >>> 7;
        x ^= x << 17;
        seed = x;
        return x & (BIG - 8);
    }

    /** Random longs over 256 MiB through the Mmu: TLB misses and walks, cache misses. */
    @Benchmark
    public long randomGetLong() {
        return mmu.getLong(bigBase + nextRandomOffset());
    }

    /** Baseline for the random reads: a plain 256 MiB shared-arena segment. */
    @Benchmark
    public long segmentRandomGetLong() {
        return bigPlain.get(ValueLayout.JAVA_LONG, nextRandomOffset());
    }

    /** Baseline for the hits: a long from a plain shared-arena segment. */
    @Benchmark
    public long segmentGetLong() {
        offset = (offset + 8) & 4095;
        return plain.get(ValueLayout.JAVA_LONG, offset);
    }

    /** Baseline for the put hits: a long into a plain shared-arena segment. */
    @Benchmark
    public void segmentPutLong() {
        offset = (offset + 8) & 4095;
        plain.set(ValueLayout.JAVA_LONG, offset, offset);
    }

    /** A pinned page's segment: native-speed access to the frame. */
    @Benchmark
    public long pinnedGetLong() {
        offset = (offset + 8) & 4095;
        return pinnedSegment.get(ValueLayout.JAVA_LONG, offset);
    }

    /** get_user_pages and put_page: a write pin of a resident page and its close. */
    @Benchmark
    public long pinUnpin() {
        try (PinnedPage p = mmu.pin(base, true)) {
            return p.pfn();
        }
    }

    /** TLB miss: every access to a different page, 4096 pages round-robin, each a lockless walk. */
    @Benchmark
    @OperationsPerInvocation(STEPS)
    public long tlbMissWalk() {
        long sum = 0;
        long page = offset;
        for (int i = 0; i < STEPS; i++) {
            page = (page + 67) & (PAGES - 1);
            sum += mmu.getLong(base + (page << 12));
        }
        offset = page;
        return sum;
    }

    /** Baseline for the misses: the same strided pattern over a plain segment. */
    @Benchmark
    @OperationsPerInvocation(STEPS)
    public long segmentStrided() {
        long sum = 0;
        long page = offset;
        for (int i = 0; i < STEPS; i++) {
            page = (page + 67) & (PAGES - 1);
            sum += plain.get(ValueLayout.JAVA_LONG, page << 12);
        }
        offset = page;
        return sum;
    }
}
