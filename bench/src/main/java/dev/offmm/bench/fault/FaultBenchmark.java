package dev.offmm.bench.fault;

import dev.offmm.bench.kernel.Libc;
import dev.offmm.core.AddressSpace;
import dev.offmm.core.LockMode;
import dev.offmm.core.MapFlags;
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

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.TimeUnit;

/**
 * will-it-scale's page_fault1 as a JMH benchmark: mmap 128 MiB anonymous, write-fault every
 * 4 KiB page, munmap. One operation is one page; the score is faults per second (per thread
 * with {@code -t}: JMH sums threads in the total). All threads share one address space, as
 * will-it-scale's threads mode does; each maps its own VMA.
 *
 * <p>{@code offmmFault} calls the fault handler directly ({@link AddressSpace#fault}), the work
 * a hardware fault hands the kernel; {@code kernel} writes one byte per page of a real
 * {@code mmap}, so its figure includes the CPU's trap and the kernel's whole fault path.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow", "-Xmx2g"})
public class FaultBenchmark {
    /** Bytes per mapping. */
    public static final long MAPPING = 128L << 20;
    /** Pages per mapping. */
    public static final int PAGES = (int) (MAPPING >>> 12);

    /** One physical memory and one address space shared by all benchmark threads. */
    @State(Scope.Benchmark)
    public static class Shared {
        /** Lock mode, with {@code +debug} for debug locks. */
        @Param({"SINGLE", "SPLIT_PTE", "SPLIT_PTE_PMD", "SPLIT_PTE_PMD+debug"})
        public String mode;

        PhysicalMemory memory;
        AddressSpace as;

        /** Builds memory for 4 concurrent mappings plus tables. */
        @Setup(Level.Trial)
        public void setUp() {
            memory = PhysicalMemory.create(640L << 20);
            boolean debug = mode.endsWith("+debug");
            LockMode lockMode = LockMode.valueOf(mode.replace("+debug", ""));
            as = AddressSpace.create(memory, VmConfig.builder().lockMode(lockMode).debugLocks(debug).build());
        }

        /** Closes both, verifying that nothing leaked. */
        @TearDown(Level.Trial)
        public void tearDown() {
            as.close();
            memory.close();
        }
    }

    /** pf1 on offmm: the fault handler for every page of a fresh 128 MiB VMA. */
    @Benchmark
    @OperationsPerInvocation(PAGES)
    public long offmmFault(Shared s) {
        AddressSpace as = s.as;
        long a = as.mmap(0, MAPPING, Prot.READ | Prot.WRITE, MapFlags.NONE);
        for (long off = 0; off < MAPPING; off += 4096) {
            as.fault(a + off, true);
        }
        as.munmap(a, MAPPING);
        return a;
    }

    /** pf1 on the host kernel: one byte written per page of a fresh 128 MiB mapping. */
    @Benchmark
    @OperationsPerInvocation(PAGES)
    public long kernel() {
        MemorySegment m = Libc.mmapAnon(MAPPING, Libc.PROT_RW);
        for (long off = 0; off < MAPPING; off += 4096) {
            m.set(ValueLayout.JAVA_BYTE, off, (byte) 1);
        }
        long a = m.address();
        Libc.munmap(m);
        return a;
    }
}
