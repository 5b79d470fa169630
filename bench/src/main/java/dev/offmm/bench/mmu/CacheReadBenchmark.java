package dev.offmm.bench.mmu;

import dev.offmm.bench.kernel.Libc;
import dev.offmm.core.Advice;
import dev.offmm.core.AddressSpace;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Mmu;
import dev.offmm.core.Prot;
import dev.offmm.core.VmConfig;
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
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * Reads that look like a cache's: 64-byte values and 8-byte words at random addresses, uniform or
 * Zipf-distributed (s = 0.99, the hot keys scattered over the whole range), over a hot set that
 * fits the TLB (256 KiB) and ranges that do not (256 MiB; 4 GiB with {@code -p size=4294967296},
 * best with {@code -p thp=true}: offmm's own 2 MiB pages), through an {@link Mmu} and from a
 * plain {@code Arena.ofShared()} segment of the same size in the same run. Run with {@code -t 1}
 * and {@code -t 2}: each thread has its own {@code Mmu} and its own sequence of addresses.
 *
 * <p>Every page of the offmm range is written once in the set-up, so each has a frame of its
 * own (a read of an untouched page would map the one shared zero page and hit in the caches).
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
public class CacheReadBenchmark {
    /** Addresses precomputed per thread (a power of two), so both sides pay the same index load. */
    private static final int SEQUENCE = 1 << 20;
    private static final int VALUE = 64;

    /** The memory both sides read: offmm's mapping and the plain segment. */
    @State(Scope.Benchmark)
    public static class Memory {
        /** Bytes read over. */
        @Param({"262144", "268435456"})
        public long size;

        /** {@code uniform} or {@code zipf} (s = 0.99). */
        @Param({"uniform", "zipf"})
        public String distribution;

        /** Whether offmm's frame region is backed by host huge pages ({@code MADV_HUGEPAGE}). */
        @Param({"false"})
        public boolean hostHugePages;

        /** Whether offmm maps the range with its own 2 MiB pages (THP: {@code Advice.HUGEPAGE}). */
        @Param({"false"})
        public boolean thp;

        PhysicalMemory memory;
        AddressSpace as;
        long base;
        Arena arena;
        MemorySegment plain;

        /** Maps {@code size}, writes every page, and allocates the plain segment. */
        @Setup(Level.Trial)
        public void setUp() {
            long huge = PhysicalMemory.HUGE_PAGE_SIZE;
            memory = PhysicalMemory.builder().bytes(((size + huge - 1) & -huge) + (64L << 20))
                    .hostHugePages(hostHugePages).build();
            as = AddressSpace.create(memory, VmConfig.defaults());
            base = as.mmap(0, size, Prot.READ | Prot.WRITE, MapFlags.NONE);
            if (thp) {
                as.madvise(base, size, Advice.HUGEPAGE);
            }
            try (Mmu mmu = as.attach()) {
                for (long off = 0; off < size; off += 8) {
                    mmu.putLong(base + off, off * 0x9E3779B97F4A7C15L);
                }
            }
            if (thp && as.stats().hugePages() != size / huge) {
                throw new IllegalStateException("only " + as.stats().hugePages() + " of " + size / huge + " are huge pages");
            }
            arena = Arena.ofShared();
            // The same backing: with host huge pages for offmm's frames, the plain segment gets them too.
            plain = arena.allocate(size, hostHugePages ? huge : 4096);
            if (hostHugePages) {
                Libc.madvise(plain, Libc.MADV_HUGEPAGE);
            }
            for (long off = 0; off < size; off += 8) {
                plain.set(ValueLayout.JAVA_LONG, off, off * 0x9E3779B97F4A7C15L);
            }
        }

        /** Closes both (offmm verifies that nothing leaked). */
        @TearDown(Level.Trial)
        public void tearDown() {
            as.close();
            memory.close();
            arena.close();
        }
    }

    /** One thread's context, buffers and address sequence. */
    @State(Scope.Thread)
    public static class Reader {
        Mmu mmu;
        final byte[] value = new byte[VALUE];
        MemorySegment valueSegment;
        Arena arena;
        int[] slots;
        int next;

        /** Attaches this thread and draws its sequence of 64-byte slots. */
        @Setup(Level.Trial)
        public void setUp(Memory m) {
            mmu = m.as.attach();
            arena = Arena.ofConfined();
            valueSegment = arena.allocate(VALUE, 64);
            int n = (int) (m.size / VALUE);
            slots = new int[SEQUENCE];
            SplittableRandom random = new SplittableRandom(Thread.currentThread().threadId() * 0x5DEECE66DL + 11);
            if (m.distribution.equals("zipf")) {
                Zipf zipf = new Zipf(n, 0.99);
                for (int i = 0; i < SEQUENCE; i++) {
                    // Scatter the ranks: the hottest keys are not neighbours in memory.
                    long rank = zipf.next(random);
                    slots[i] = (int) Long.remainderUnsigned(rank * 0x9E3779B97F4A7C15L, n);
                }
            } else if (m.distribution.equals("uniform")) {
                for (int i = 0; i < SEQUENCE; i++) {
                    slots[i] = random.nextInt(n);
                }
            } else {
                throw new IllegalArgumentException("distribution=" + m.distribution + " (expected uniform or zipf)");
            }
        }

        /** Detaches. */
        @TearDown(Level.Trial)
        public void tearDown() {
            mmu.close();
            arena.close();
        }

        long nextOffset() {
            int i = next;
            next = (i + 1) & (SEQUENCE - 1);
            return (long) slots[i] * VALUE;
        }
    }

    /** YCSB's Zipfian generator (Gray et al., "Quickly generating billion-record synthetic databases"). */
    static final class Zipf {
        private final long n;
        private final double theta;
        private final double zetan;
        private final double alpha;
        private final double eta;

        Zipf(long n, double theta) {
            this.n = n;
            this.theta = theta;
            double z = 0;
            for (long i = 1; i <= n; i++) {
                z += 1 / Math.pow(i, theta);
            }
            this.zetan = z;
            double zeta2 = 1 + 1 / Math.pow(2, theta);
            this.alpha = 1 / (1 - theta);
            this.eta = (1 - Math.pow(2.0 / n, 1 - theta)) / (1 - zeta2 / zetan);
        }

        long next(SplittableRandom random) {
            double u = random.nextDouble();
            double uz = u * zetan;
            if (uz < 1) {
                return 0;
            }
            if (uz < 1 + Math.pow(0.5, theta)) {
                return 1;
            }
            return Math.min(n - 1, (long) (n * Math.pow(eta * u - eta + 1, alpha)));
        }
    }

    /** A 64-byte value into a {@code byte[]} through the Mmu. */
    @Benchmark
    public byte offmmRead64(Memory m, Reader r) {
        r.mmu.read(m.base + r.nextOffset(), r.value, 0, VALUE);
        return r.value[VALUE - 1];
    }

    /** A 64-byte value into a {@code byte[]} from the plain segment. */
    @Benchmark
    public byte plainRead64(Memory m, Reader r) {
        MemorySegment.copy(m.plain, ValueLayout.JAVA_BYTE, r.nextOffset(), r.value, 0, VALUE);
        return r.value[VALUE - 1];
    }

    /** A 64-byte value into a {@code MemorySegment} through the Mmu. */
    @Benchmark
    public long offmmRead64Segment(Memory m, Reader r) {
        r.mmu.read(m.base + r.nextOffset(), r.valueSegment);
        return r.valueSegment.get(ValueLayout.JAVA_LONG, 56);
    }

    /** A 64-byte value into a {@code MemorySegment} from the plain segment. */
    @Benchmark
    public long plainRead64Segment(Memory m, Reader r) {
        MemorySegment.copy(m.plain, r.nextOffset(), r.valueSegment, 0, VALUE);
        return r.valueSegment.get(ValueLayout.JAVA_LONG, 56);
    }

    /** An 8-byte word through the Mmu. */
    @Benchmark
    public long offmmGetLong(Memory m, Reader r) {
        return r.mmu.getLong(m.base + r.nextOffset());
    }

    /** An 8-byte word from the plain segment. */
    @Benchmark
    public long plainGetLong(Memory m, Reader r) {
        return m.plain.get(ValueLayout.JAVA_LONG, r.nextOffset());
    }
}
