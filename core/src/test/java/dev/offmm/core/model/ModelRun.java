package dev.offmm.core.model;

import dev.offmm.core.Mmu;
import dev.offmm.core.VmConfig;
import dev.offmm.core.VmStats;
import dev.offmm.offheap.inject.FailPoints;
import dev.offmm.offheap.inject.FailSite;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Phaser;
import java.util.concurrent.atomic.AtomicReference;

/**
 * One model run: {@code threads} threads each run {@code opsPerThread} seeded operations in their
 * own zones of one address space, against their own sequential model. Every
 * {@code checkEvery} operations all threads meet and one of them runs the global checks
 * ({@link World#checkQuiescent}); at the end the same checks run once more, the address space is
 * closed (check_mm) and every frame and debug lock must be back.
 *
 * <p>On a mismatch the report names the seed, the mode and the failing operation, lists the last
 * operations of every thread, and shrinks the failing thread's trace by replaying it alone
 * (delta debugging over the concrete operations: the model predicts the outcome of any sequence,
 * so every candidate is checkable). A failure that needs the other threads does not reproduce
 * alone; the report says so.
 */
final class ModelRun {
    /** How a run is set up. */
    record Options(int threads, long opsPerThread, int checkEvery, long memoryBytes, double failProbability,
                   long rogueAt, boolean shrink, double forkProbability) {
        Options(int threads, long opsPerThread, int checkEvery, long memoryBytes, double failProbability, long rogueAt,
                boolean shrink) {
            this(threads, opsPerThread, checkEvery, memoryBytes, failProbability, rogueAt, shrink, 0);
        }

        static Options of(int threads, long opsPerThread) {
            return new Options(threads, opsPerThread, 4096, 64L << 20, 0, -1, true);
        }

        Options withFailures(double probability) {
            return new Options(threads, opsPerThread, checkEvery, memoryBytes, probability, rogueAt, shrink,
                    forkProbability);
        }

        Options withRogueWriteAt(long at, boolean doShrink) {
            return new Options(threads, opsPerThread, checkEvery, memoryBytes, failProbability, at, doShrink,
                    forkProbability);
        }

        /** Forks at a meeting with {@code probability} (see {@link Snapshots}), in more memory, meeting more often. */
        Options withForks(double probability) {
            return new Options(threads, opsPerThread, 512, 256L << 20, failProbability, rogueAt, shrink, probability);
        }
    }

    /** What a run did. */
    record Result(long ops, long millis, VmStats stats, long injected, long[][] outcomes, String forks, long forked) {
        /** Operations of {@code kind} that ended with {@code outcome} (see {@link OpRunner#OUTCOMES}). */
        long count(Op.Kind kind, String outcome) {
            return outcomes[kind.ordinal()][Arrays.asList(OpRunner.OUTCOMES).indexOf(outcome)];
        }

        /** A one-line-per-kind summary of the outcomes. */
        String outcomeTable() {
            StringBuilder b = new StringBuilder();
            for (Op.Kind k : Op.Kind.values()) {
                StringBuilder line = new StringBuilder();
                for (int i = 0; i < OpRunner.OUTCOMES.length; i++) {
                    if (outcomes[k.ordinal()][i] != 0) {
                        line.append(' ').append(OpRunner.OUTCOMES[i]).append('=').append(outcomes[k.ordinal()][i]);
                    }
                }
                if (!line.isEmpty()) {
                    b.append(String.format("  %-16s%s%n", k, line));
                }
            }
            return b.toString();
        }
    }

    private static final FailSite[] RANDOM_SITES = {FailSite.FRAME, FailSite.FRAME_HIGH_ORDER, FailSite.PAGE_TABLE,
            FailSite.PTLOCK, FailSite.SLAB_PAGE, FailSite.REPORT};
    private static final int TRACE_TAIL = 50;

    private ModelRun() {
    }

    /** Runs; throws an {@link AssertionError} with the full report if anything disagreed. */
    static Result run(VmConfig config, long seed, Options o) {
        long t0 = System.nanoTime();
        World world = new World(config, o.threads(), o.memoryBytes());
        Snapshots snapshots = new Snapshots(world, o.forkProbability());
        List<List<Op>> traces = new ArrayList<>();
        OpRunner[] runners = new OpRunner[o.threads()];
        AtomicReference<Failure> failure = new AtomicReference<>();
        boolean inject = o.failProbability() > 0;
        FailPoints fp = world.memory.zone().failPoints();
        Phaser phaser = new Phaser(o.threads()) {
            @Override
            protected boolean onAdvance(int phase, int parties) {
                if (parties == 0 || failure.get() != null) {
                    return true;
                }
                fp.disarmAll();
                try {
                    world.checkQuiescent(models(runners));
                    snapshots.atMeeting(models(runners), seed * 7 + phase,
                            () -> arm(fp, inject, seed * 13 + phase, o.failProbability()), fp::disarmAll);
                } catch (Throwable e) {
                    failure.compareAndSet(null, new Failure(-1, -1, e));
                }
                arm(fp, inject, seed + phase, o.failProbability());
                return failure.get() != null;
            }
        };
        Thread[] workers = new Thread[o.threads()];
        for (int t = 0; t < o.threads(); t++) {
            List<Op> trace = new ArrayList<>();
            traces.add(trace);
            int tid = t;
            workers[t] = new Thread(() -> work(world, tid, seed, o, trace, runners, failure, phaser), "model-" + t);
        }
        arm(fp, inject, seed, o.failProbability());
        for (Thread w : workers) {
            w.start();
        }
        join(workers);
        long injected = 0;
        for (FailSite s : FailSite.values()) {
            injected += fp.injected(s);
        }
        fp.disarmAll();
        VmStats stats = world.as.stats();
        if (failure.get() == null) {
            try {
                world.checkQuiescent(models(runners));
            } catch (Throwable e) {
                failure.set(new Failure(-1, -1, e));
            }
        }
        try {
            if (failure.get() == null) {
                snapshots.closeAll(seed);
            }
            world.close();
        } catch (Throwable e) {
            failure.compareAndSet(null, new Failure(-1, -1, e));
        }
        Failure f = failure.get();
        if (f != null) {
            throw report(config, seed, o, f, traces);
        }
        long ops = 0;
        for (List<Op> tr : traces) {
            ops += tr.size();
        }
        long[][] outcomes = new long[Op.Kind.values().length][OpRunner.OUTCOMES.length];
        for (OpRunner r : runners) {
            for (int k = 0; k < outcomes.length; k++) {
                for (int i = 0; i < outcomes[k].length; i++) {
                    outcomes[k][i] += r.outcomes[k][i];
                }
            }
        }
        return new Result(ops, (System.nanoTime() - t0) / 1_000_000, stats, injected, outcomes, snapshots.toString(),
                snapshots.forks());
    }

    private static void arm(FailPoints fp, boolean inject, long seed, double probability) {
        if (!inject) {
            return;
        }
        for (int i = 0; i < RANDOM_SITES.length; i++) {
            fp.failRandomly(RANDOM_SITES[i], seed * 31 + i, probability);
        }
    }

    private static List<PageModel> models(OpRunner[] runners) {
        List<PageModel> out = new ArrayList<>();
        for (OpRunner r : runners) {
            if (r != null) {
                out.add(r.model);
            }
        }
        return out;
    }

    /** Where a run failed: the thread and op index (-1 for a global check), and what was thrown. */
    private record Failure(int thread, long op, Throwable error) {
    }

    static long threadSeed(long seed, int t) {
        return seed * 0x9E3779B97F4A7C15L + t * 0xBF58476D1CE4E5B9L + 1;
    }

    private static void work(World world, int t, long seed, Options o, List<Op> trace, OpRunner[] runners,
                             AtomicReference<Failure> failure, Phaser phaser) {
        long i = 0;
        try (Mmu mmu = world.as.attach()) {
            OpRunner runner = new OpRunner(world, t, mmu, o.failProbability() > 0);
            runners[t] = runner;
            OpGenerator gen = new OpGenerator(threadSeed(seed, t), runner, t == 0 ? o.rogueAt() : -1);
            // Threads park at random while attached (never idle()): a context between accesses must
            // hold nothing back, or another thread's allocation would starve and the run fail.
            java.util.SplittableRandom parks = new java.util.SplittableRandom(threadSeed(seed, t) ^ 0x5A5A5A5AL);
            try {
                for (; i < o.opsPerThread() && failure.get() == null; i++) {
                    Op op = gen.next();
                    trace.add(op);
                    runner.apply(op);
                    if (parks.nextInt(512) == 0) {
                        java.util.concurrent.locks.LockSupport.parkNanos(parks.nextLong(200_000));
                    }
                    if ((i + 1) % o.checkEvery() == 0) {
                        // Met while attached, without idle(): the context holds nothing between accesses.
                        phaser.arriveAndAwaitAdvance();
                    }
                }
            } finally {
                runner.releasePins();
            }
        } catch (Throwable e) {
            failure.compareAndSet(null, new Failure(t, i, e));
        } finally {
            phaser.arriveAndDeregister();
        }
    }

    private static void join(Thread[] threads) {
        for (Thread t : threads) {
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
        }
    }

    private static AssertionError report(VmConfig config, long seed, Options o, Failure f, List<List<Op>> traces) {
        StringBuilder b = new StringBuilder();
        String mode = config.lockMode() + (config.debugLocks() ? "+debug" : "");
        b.append("model run failed: seed=").append(seed).append(" mode=").append(mode).append(" threads=")
                .append(o.threads()).append(" opsPerThread=").append(o.opsPerThread());
        if (o.failProbability() > 0) {
            b.append(" failProbability=").append(o.failProbability());
        }
        b.append('\n');
        if (f.thread() >= 0) {
            b.append("thread ").append(f.thread()).append(" failed at op #").append(f.op()).append(": ")
                    .append(f.error()).append('\n');
        } else {
            b.append("a global check failed: ").append(f.error()).append('\n');
        }
        for (int t = 0; t < traces.size(); t++) {
            List<Op> tr = traces.get(t);
            int tail = t == f.thread() || f.thread() < 0 ? TRACE_TAIL : 10;
            b.append("last ").append(Math.min(tail, tr.size())).append(" ops of thread ").append(t).append(":\n");
            for (int i = Math.max(0, tr.size() - tail); i < tr.size(); i++) {
                b.append("  #").append(i).append(' ').append(tr.get(i)).append('\n');
            }
        }
        if (o.shrink() && f.thread() >= 0 && o.failProbability() == 0) {
            Shrinker.shrink(config, o.threads(), f.thread(), traces.get(f.thread()), b);
        } else if (o.shrink() && f.thread() < 0 && o.failProbability() == 0) {
            for (int t = 0; t < traces.size(); t++) {
                if (Shrinker.reproduces(config, o.threads(), t, traces.get(t))) {
                    Shrinker.shrink(config, o.threads(), t, traces.get(t), b);
                    break;
                }
            }
        }
        b.append("rerun: -Doffmm.soak.seed=").append(seed).append(" with the same mode and ops");
        return new AssertionError(b.toString(), f.error());
    }
}
