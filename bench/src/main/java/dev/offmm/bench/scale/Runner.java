package dev.offmm.bench.scale;

import dev.offmm.bench.kernel.Libc;
import dev.offmm.bench.stat.LiveCounters;
import dev.offmm.core.AddressSpace;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Mmu;
import dev.offmm.core.Prot;
import dev.offmm.core.VmStats;
import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.LockClass;
import dev.offmm.offheap.zone.Zone;

import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Measures one (workload, target, threads) point: starts the threads, lets them warm up, samples
 * their counters over the measured window, stops them, and for offmm closes the address space,
 * which verifies that nothing leaked.
 */
final class Runner {
    private final long warmupNanos;
    private final long measureNanos;
    private final PrintStream progress;
    /** A live progress line only on a terminal; the per-point lines report progress otherwise. */
    private final boolean tty = System.console() != null;

    private final LiveCounters live;

    Runner(double warmupSeconds, double measureSeconds, PrintStream progress, LiveCounters live) {
        this.live = live;
        this.warmupNanos = (long) (warmupSeconds * 1e9);
        this.measureNanos = (long) (measureSeconds * 1e9);
        this.progress = progress;
    }

    Result run(Workload w, Target target, int threads) throws InterruptedException {
        if (target.isKernel()) {
            return runKernel(w, threads);
        }
        return target.isZero() ? runZero(w, threads) : runOffmm(w, target, threads);
    }

    /**
     * The floor: each thread zeroes the 4 KiB frames of its own pool, of the size its loop
     * cycles through, with the call the fault path zeroes with; one op per frame.
     */
    private Result runZero(Workload w, int threads) throws InterruptedException {
        try (PhysicalMemory memory = PhysicalMemory.create(w.physicalBytes(threads))) {
            Zone zone = memory.zone();
            long poolFrames = w.poolBytesPerThread(threads) >>> 12;
            // The 2 MiB loops' floor (zero-2m) zeroes whole 2 MiB frames, as a THP fault does.
            int order = w.huge() ? 9 : 0;
            Body body = (t, ops, stop) -> {
                long first = 512 + t * poolFrames;
                while (!stop.get()) {
                    for (long pfn = first; pfn < first + poolFrames; pfn += 1L << order) {
                        zone.zeroFrames(pfn, order);
                        ops.increment();
                    }
                }
            };
            return measure(w, Target.ZERO, threads, body, null);
        }
    }

    private Result runOffmm(Workload w, Target target, int threads) throws InterruptedException {
        try (PhysicalMemory memory = target.physicalMemory(w.physicalBytes(threads));
             AddressSpace as = AddressSpace.create(memory, target.config())) {
            long sharedBytes = w.sharedBytes(threads);
            long shared = sharedBytes > 0 ? as.mmap(0, sharedBytes, Prot.READ | Prot.WRITE, MapFlags.NONE) : 0;
            Body body = (t, ops, stop) -> {
                try (Mmu mmu = as.attach()) {
                    while (!stop.get()) {
                        w.offmmRound(as, mmu, shared, t, threads, ops);
                    }
                }
            };
            return measure(w, target, threads, body, as);
        }
    }

    private Result runKernel(Workload w, int threads) throws InterruptedException {
        long sharedBytes = w.sharedBytes(threads);
        MemorySegment shared = sharedBytes > 0 ? Libc.mmapAnon(sharedBytes, Libc.PROT_RW) : null;
        try {
            Body body = (t, ops, stop) -> {
                while (!stop.get()) {
                    w.kernelRound(shared, t, threads, ops);
                }
            };
            long[] thp0 = w.huge() ? KernelThp.read() : null;
            Result r = measure(w, Target.KERNEL, threads, body, null);
            if (thp0 != null) {
                long[] thp1 = KernelThp.read();
                progress.printf("  kernel %s %d threads: %d THP faults, %d fell back to 4 KiB (/proc/vmstat)%n",
                        w.cliName(), threads, thp1[0] - thp0[0], thp1[1] - thp0[1]);
            }
            return r;
        } finally {
            if (shared != null) {
                Libc.munmap(shared);
            }
        }
    }

    /** A thread's loop. */
    private interface Body {
        void run(int thread, OpsCounter ops, java.util.concurrent.atomic.AtomicBoolean stop);
    }

    private Result measure(Workload w, Target target, int threads, Body body, AddressSpace as) throws InterruptedException {
        OpsCounter[] counters = new OpsCounter[threads];
        java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
        ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
        CountDownLatch started = new CountDownLatch(threads);
        List<Thread> ts = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            counters[t] = new OpsCounter();
            int tid = t;
            Thread th = new Thread(() -> {
                started.countDown();
                try {
                    body.run(tid, counters[tid], stop);
                } catch (Throwable e) {
                    errors.add(e);
                    stop.set(true);
                }
            }, "offmm-scale-" + t);
            th.setDaemon(true);
            ts.add(th);
            th.start();
        }
        started.await();
        if (live != null) {
            live.source(as, () -> sum(counters));
        }
        String label = String.format("%-12s %-20s %2d threads", w.cliName(), target.name(), threads);
        TimeUnit.NANOSECONDS.sleep(warmupNanos);
        long c0 = sum(counters);
        VmStats s0 = as == null ? null : as.stats();
        long t0 = System.nanoTime();
        long end = t0 + measureNanos;
        long last = c0;
        long lastT = t0;
        while (System.nanoTime() < end && !stop.get()) {
            TimeUnit.MILLISECONDS.sleep(Math.min(1000, Math.max(1, (end - System.nanoTime()) / 1_000_000)));
            long now = System.nanoTime();
            long c = sum(counters);
            if (tty) {
                progress.printf("\r  %s  %8.3f M faults/s", label, (c - last) * 1e3 / (now - lastT));
                progress.flush();
            }
            last = c;
            lastT = now;
        }
        long c1 = sum(counters);
        long t1 = System.nanoTime();
        VmStats s1 = as == null ? null : as.stats();
        stop.set(true);
        for (Thread th : ts) {
            th.join();
        }
        if (live != null) {
            live.source(null, null);
        }
        if (tty) {
            progress.print("\r" + " ".repeat(label.length() + 32) + "\r");
        }
        if (!errors.isEmpty()) {
            throw new IllegalStateException(label + ": a thread failed", errors.peek());
        }
        double opsPerSecond = (c1 - c0) * 1e9 / (t1 - t0);
        if (as == null) {
            return new Result(w, target, threads, opsPerSecond, c1 - c0, 0, 0, 0, 0);
        }
        long acq = 0;
        for (LockClass k : LockClass.values()) {
            acq += s1.lockAcquisitions().get(k) - s0.lockAcquisitions().get(k);
        }
        return new Result(w, target, threads, opsPerSecond, c1 - c0,
                delta(s0, s1, LockClass.PAGE_TABLE_LOCK), delta(s0, s1, LockClass.PMD), delta(s0, s1, LockClass.PTE), acq);
    }

    private static long delta(VmStats s0, VmStats s1, LockClass k) {
        return s1.lockContentions().get(k) - s0.lockContentions().get(k);
    }

    private static long sum(OpsCounter[] counters) {
        long s = 0;
        for (OpsCounter c : counters) {
            s += c.get();
        }
        return s;
    }
}
