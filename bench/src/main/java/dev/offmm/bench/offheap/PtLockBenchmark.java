package dev.offmm.bench.offheap;

import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.LockClass;
import dev.offmm.offheap.lock.PtLocks;
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
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * A page-table lock taken and released, inline (the ptl word in mem_map is the lock) and debug
 * (the word points at a lock record in the slab), by one thread (uncontended) and by two threads
 * on the same lock (contended; the score is the average time per lock+unlock of each thread).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
public class PtLockBenchmark {

    /** One PTE table with its lock, shared by the benchmark threads. */
    @State(Scope.Benchmark)
    public static class Table {
        /** Lock mode. */
        @Param({"inline", "debug"})
        public String mode;

        PhysicalMemory memory;
        PtLocks locks;
        long pfn;
        long handle;

        /** Builds the table and runs its lock constructor. */
        @Setup(Level.Trial)
        public void setUp() {
            memory = PhysicalMemory.create(4L << 20);
            locks = new PtLocks(memory.zone().memMap(), memory.zone().lockSlab(), mode.equals("debug"));
            pfn = memory.zone().allocFrame();
            memory.zone().memMap().setTypeRelease(pfn, MemMap.TYPE_PTE_TABLE);
            if (!locks.ptlockInit(pfn, LockClass.PTE)) {
                throw new IllegalStateException("no lock");
            }
            handle = locks.ptlockPtr(pfn);
        }

        /** Runs the destructor and frees the table. */
        @TearDown(Level.Trial)
        public void tearDown() {
            locks.ptlockFree(pfn);
            memory.zone().memMap().setTypeRelease(pfn, MemMap.TYPE_NONE);
            memory.zone().freeFrame(pfn);
            memory.close();
        }
    }

    /** lock + unlock by one thread. */
    @Benchmark
    @Threads(1)
    public boolean uncontended(Table t) {
        boolean contended = t.locks.lock(t.handle);
        t.locks.unlock(t.handle);
        return contended;
    }

    /** lock + unlock by two threads on the same lock. */
    @Benchmark
    @Threads(2)
    public boolean contended(Table t) {
        boolean contended = t.locks.lock(t.handle);
        t.locks.unlock(t.handle);
        return contended;
    }
}
