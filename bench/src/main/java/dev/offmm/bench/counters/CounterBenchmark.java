package dev.offmm.bench.counters;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * The cost of one counter increment on the fault path when every thread counts: offmm's striped
 * {@link LongAdder} against a single shared {@link AtomicLong}, with 1 and 2 threads.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--sun-misc-unsafe-memory-access=allow")
@State(Scope.Benchmark)
public class CounterBenchmark {
    private final LongAdder adder = new LongAdder();
    private final AtomicLong atomic = new AtomicLong();

    /** Striped, one thread. */
    @Benchmark
    @Threads(1)
    public void stripedOneThread() {
        adder.increment();
    }

    /** Striped, two threads on one counter. */
    @Benchmark
    @Threads(2)
    public void stripedTwoThreads() {
        adder.increment();
    }

    /** Shared atomic, one thread. */
    @Benchmark
    @Threads(1)
    public void sharedOneThread() {
        atomic.incrementAndGet();
    }

    /** Shared atomic, two threads: the line bounces between cores. */
    @Benchmark
    @Threads(2)
    public void sharedTwoThreads() {
        atomic.incrementAndGet();
    }
}
