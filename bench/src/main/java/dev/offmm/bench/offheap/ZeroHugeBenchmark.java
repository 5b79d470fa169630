package dev.offmm.bench.offheap;

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
import java.util.concurrent.TimeUnit;

/**
 * Ways to zero a 2 MiB frame, the whole cost of a THP fault: one {@code MemorySegment.fill} of
 * 2 MiB (what offmm does), 512 fills of 4 KiB, 512 copies from a zero page (what a 4 KiB fault
 * does), and fills in 64 KiB chunks. The frames cycle through a pool of {@code poolMiB}, so a
 * pool larger than the caches measures what a fault sees: memory that is not in any cache.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
@State(Scope.Thread)
public class ZeroHugeBenchmark {
    private static final long HUGE = 2L << 20;
    private static final long PAGE = 4096;

    /** Bytes of frames cycled through. */
    @Param({"256"})
    public long poolMiB;

    private Arena arena;
    private MemorySegment pool;
    private MemorySegment zeroPage;
    private long next;

    /** The pool, touched once so that the host backs it. */
    @Setup(Level.Trial)
    public void setUp() {
        arena = Arena.ofShared();
        pool = arena.allocate(poolMiB << 20, HUGE);
        pool.fill((byte) 1);
        zeroPage = arena.allocate(PAGE, PAGE);
    }

    /** Frees the pool. */
    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    private long frame() {
        long at = next;
        next = (next + HUGE) % pool.byteSize();
        return at;
    }

    /** One fill of the whole 2 MiB. */
    @Benchmark
    public MemorySegment fill2m() {
        MemorySegment f = pool.asSlice(frame(), HUGE);
        f.fill((byte) 0);
        return f;
    }

    /** 512 fills of 4 KiB. */
    @Benchmark
    public long fill4k() {
        long at = frame();
        for (long o = 0; o < HUGE; o += PAGE) {
            pool.asSlice(at + o, PAGE).fill((byte) 0);
        }
        return at;
    }

    /** 32 fills of 64 KiB. */
    @Benchmark
    public long fill64k() {
        long at = frame();
        for (long o = 0; o < HUGE; o += 16 * PAGE) {
            pool.asSlice(at + o, 16 * PAGE).fill((byte) 0);
        }
        return at;
    }

    /** 512 copies from a zero page, as the 4 KiB fault path zeroes. */
    @Benchmark
    public long copyZeroPage() {
        long at = frame();
        for (long o = 0; o < HUGE; o += PAGE) {
            MemorySegment.copy(zeroPage, 0, pool, at + o, PAGE);
        }
        return at;
    }
}
