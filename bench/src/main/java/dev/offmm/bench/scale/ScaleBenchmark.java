package dev.offmm.bench.scale;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Mmu;
import dev.offmm.core.Prot;
import dev.offmm.offheap.PhysicalMemory;
import org.openjdk.jmh.annotations.AuxCounters;
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
import org.openjdk.jmh.infra.BenchmarkParams;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The harness's loops under JMH, for forked, statistically sound figures: one invocation is one
 * round of a workload on the calling thread; the {@code faults} secondary result is page faults
 * per second (sum over threads with {@code -t}). Run e.g.
 * {@code ./offmm jmh ScaleBenchmark -t 2 -p workload=disjoint}.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
public class ScaleBenchmark {

    /** The address space all benchmark threads share. */
    @State(Scope.Benchmark)
    public static class Shared {
        /** pf1, pf4, disjoint or shared-table. */
        @Param({"pf1", "disjoint", "shared-table"})
        public String workload;
        /** A lock mode, optionally +debug. */
        @Param({"SINGLE", "SPLIT_PTE_PMD"})
        public String mode;

        Workload w;
        int threads;
        PhysicalMemory memory;
        AddressSpace as;
        long shared;
        final AtomicInteger nextThread = new AtomicInteger();

        /** Builds the memory and the shared VMA. */
        @Setup(Level.Trial)
        public void setUp(BenchmarkParams params) {
            w = Workload.parse(workload);
            threads = params.getThreads();
            memory = PhysicalMemory.create(w.physicalBytes(threads));
            as = AddressSpace.create(memory, Target.parse(mode).config());
            long bytes = w.sharedBytes(threads);
            shared = bytes > 0 ? as.mmap(0, bytes, Prot.READ | Prot.WRITE, MapFlags.NONE) : 0;
        }

        /** Closes both, verifying that nothing leaked. */
        @TearDown(Level.Trial)
        public void tearDown() {
            as.close();
            memory.close();
        }
    }

    /** One benchmark thread: its index, its Mmu and its fault count. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    public static class PerThread {
        /** Page faults, reported per second. */
        public long faults;
        int index;
        Mmu mmu;
        final OpsCounter ops = new OpsCounter();

        /** Attaches the benchmark thread. */
        @Setup(Level.Trial)
        public void setUp(Shared s) {
            index = s.nextThread.getAndIncrement();
            mmu = s.as.attach();
        }

        /** Detaches it. */
        @TearDown(Level.Trial)
        public void tearDown() {
            mmu.close();
        }
    }

    /** One round of the workload. */
    @Benchmark
    public void round(Shared s, PerThread t) {
        long before = t.ops.get();
        s.w.offmmRound(s.as, t.mmu, s.shared, t.index, s.threads, t.ops);
        t.faults += t.ops.get() - before;
    }
}
