package dev.offmm.bench.reclaim;

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
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * What a context costs as others accumulate: {@code idle()} and a pin + unpin, with
 * {@code contexts} other threads attached and parked.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
@State(Scope.Thread)
public class ContextBenchmark {
    /** Other threads attached to the address space and parked. */
    @Param({"0", "1000"})
    public int contexts;

    private PhysicalMemory memory;
    private AddressSpace as;
    private Mmu mmu;
    private long va;
    private final CountDownLatch done = new CountDownLatch(1);
    private final List<Thread> others = new ArrayList<>();

    /** Maps a page, attaches this thread and {@code contexts} others. */
    @Setup(Level.Trial)
    public void setUp() throws InterruptedException {
        memory = PhysicalMemory.create(64L << 20);
        as = AddressSpace.create(memory, VmConfig.defaults());
        va = as.mmap(0, 4096, Prot.READ | Prot.WRITE, MapFlags.POPULATE);
        mmu = as.attach();
        CountDownLatch attached = new CountDownLatch(contexts);
        for (int i = 0; i < contexts; i++) {
            Thread t = new Thread(() -> {
                try (Mmu m = as.attach()) {
                    m.getLong(va);
                    attached.countDown();
                    done.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            t.setDaemon(true);
            t.start();
            others.add(t);
        }
        attached.await();
    }

    /** Lets the others go, detaches, closes. */
    @TearDown(Level.Trial)
    public void tearDown() throws InterruptedException {
        done.countDown();
        for (Thread t : others) {
            t.join();
        }
        mmu.close();
        as.close();
        memory.close();
    }

    /** The hint: drops this context's translations. */
    @Benchmark
    public void idle() {
        mmu.idle();
    }

    /** get_user_pages and put_page: a write pin of a resident page and its close. */
    @Benchmark
    public long pinUnpin() {
        try (PinnedPage p = mmu.pin(va, true)) {
            return p.pfn();
        }
    }
}
