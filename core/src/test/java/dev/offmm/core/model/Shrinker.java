package dev.offmm.core.model;

import dev.offmm.core.Mmu;
import dev.offmm.core.VmConfig;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Replays one thread's trace alone on a fresh address space, and shrinks a failing trace by
 * delta debugging (ddmin): drop chunks of operations while the replay still fails with the same
 * kind of error. Bounded in replays and time; prints the smallest failing trace found.
 */
final class Shrinker {
    private static final int MAX_REPLAYS = 400;
    private static final long MAX_NANOS = 30_000_000_000L;
    private static final long REPLAY_MEMORY = 32L << 20;

    private Shrinker() {
    }

    /**
     * Replays {@code ops} as thread {@code t} of a run with {@code threads} threads (for its zones),
     * then runs the global checks and closes. Returns what failed, or {@code null}.
     */
    static Throwable replay(VmConfig config, int threads, int t, List<Op> ops) {
        AtomicReference<Throwable> error = new AtomicReference<>();
        Thread th = new Thread(() -> {
            World world;
            try {
                world = new World(config, threads, REPLAY_MEMORY);
            } catch (Throwable e) {
                error.set(e);
                return;
            }
            try {
                try (Mmu mmu = world.as.attach()) {
                    OpRunner runner = new OpRunner(world, t, mmu, false);
                    try {
                        for (Op op : ops) {
                            runner.apply(op);
                        }
                    } finally {
                        runner.releasePins();
                    }
                    world.checkQuiescent(List.of(runner.model));
                }
            } catch (Throwable e) {
                error.set(e);
            } finally {
                try {
                    world.close();
                } catch (Throwable e) {
                    error.compareAndSet(null, e);
                }
            }
        }, "model-replay");
        th.start();
        try {
            th.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
        return error.get();
    }

    static boolean reproduces(VmConfig config, int threads, int t, List<Op> ops) {
        return replay(config, threads, t, ops) != null;
    }

    /** Appends to {@code out} whether the trace fails alone and, if so, a shrunk failing trace. */
    static void shrink(VmConfig config, int threads, int t, List<Op> trace, StringBuilder out) {
        long deadline = System.nanoTime() + MAX_NANOS;
        List<Op> cur = new ArrayList<>(trace);
        Throwable first = replay(config, threads, t, cur);
        if (first == null) {
            out.append("replayed alone, thread ").append(t).append("'s ").append(cur.size())
                    .append(" ops do NOT fail: the failure needs the other threads (a race).\n");
            return;
        }
        Class<?> kind = first.getClass();
        int replays = 1;
        int n = 2;
        while (cur.size() >= 2 && replays < MAX_REPLAYS && System.nanoTime() < deadline) {
            int chunk = (cur.size() + n - 1) / n;
            boolean reduced = false;
            for (int start = 0; start < cur.size() && replays < MAX_REPLAYS && System.nanoTime() < deadline; start += chunk) {
                List<Op> candidate = new ArrayList<>(cur.subList(0, start));
                candidate.addAll(cur.subList(Math.min(cur.size(), start + chunk), cur.size()));
                replays++;
                Throwable e = replay(config, threads, t, candidate);
                if (e != null && e.getClass() == kind) {
                    cur = candidate;
                    first = e;
                    n = Math.max(n - 1, 2);
                    reduced = true;
                    break;
                }
            }
            if (!reduced) {
                if (n >= cur.size()) {
                    break;
                }
                n = Math.min(cur.size(), 2 * n);
            }
        }
        out.append("replayed alone, the failure reproduces; shrunk from ").append(trace.size()).append(" to ")
                .append(cur.size()).append(" ops in ").append(replays).append(" replays (thread ").append(t)
                .append("'s zones), failing with: ").append(first).append('\n');
        for (int i = 0; i < cur.size(); i++) {
            out.append("  ").append(i).append(": ").append(cur.get(i)).append('\n');
        }
    }
}
