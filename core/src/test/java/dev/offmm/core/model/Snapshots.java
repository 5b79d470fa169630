package dev.offmm.core.model;

import dev.offmm.core.Advice;
import dev.offmm.core.AddressSpace;
import dev.offmm.core.Prot;
import dev.offmm.core.VmException;
import dev.offmm.core.VmStats;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;

/**
 * Forks in a model run: at some of the threads' meeting points the world's address space, or a
 * snapshot forked earlier, is forked; the child gets a deep copy of the model (every thread's
 * pages and the shared window) as its own model. At every meeting each snapshot gets a few
 * random writes and a DONTNEED of its own, applied to its model, and is checked against it
 * (mappings, RSS, every readable byte); now and then one is closed (check_mm). The parent's
 * threads go on with their operations and their own checks, so a write crossing from a child to
 * the parent, or back, is a mismatch on one side or the other. With failures injected, a fork
 * may fail with ENOMEM; then there is no child, and the parent's next check shows it unchanged.
 * Called only while every thread is quiescent.
 */
final class Snapshots {
    /** Snapshots alive at once, at most. */
    private static final int MAX = 3;

    private record Snapshot(AddressSpace space, TreeMap<Long, PageModel.Page> model, int depth) {
    }

    private final World world;
    private final double forkProbability;
    private final List<Snapshot> live = new ArrayList<>();
    private long forks;
    private long failedForks;
    private long closed;

    Snapshots(World world, double forkProbability) {
        this.world = world;
        this.forkProbability = forkProbability;
    }

    long forks() {
        return forks;
    }

    long failedForks() {
        return failedForks;
    }

    long closed() {
        return closed;
    }

    /** Checks and changes the snapshots, then maybe forks and maybe closes one; fail points are armed for the fork only. */
    void atMeeting(List<PageModel> models, long seed, Runnable armForFork, Runnable disarm) {
        if (forkProbability == 0) {
            return;
        }
        SplittableRandom rnd = new SplittableRandom(seed);
        for (Snapshot s : live) {
            check(s);
            mutate(s, rnd);
            check(s);
        }
        if (rnd.nextDouble() < forkProbability && live.size() < MAX) {
            Snapshot from = live.isEmpty() || rnd.nextBoolean() ? null : live.get(rnd.nextInt(live.size()));
            TreeMap<Long, PageModel.Page> model = from == null ? copyOf(world, models) : copy(from.model());
            armForFork.run();
            try {
                AddressSpace child = (from == null ? world.as : from.space()).fork();
                live.add(new Snapshot(child, model, from == null ? 1 : from.depth() + 1));
                forks++;
            } catch (VmException e) {
                if (e.code() != VmException.Code.ENOMEM) {
                    throw e;
                }
                failedForks++;
            } finally {
                disarm.run();
            }
            if (from != null) {
                check(from);
            }
        }
        if (!live.isEmpty() && rnd.nextInt(4) == 0) {
            closeOne(rnd.nextInt(live.size()));
        }
        for (Snapshot s : live) {
            check(s);
        }
    }

    /** Closes every snapshot (each close runs check_mm), the youngest first or not, as {@code seed} says. */
    void closeAll(long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        while (!live.isEmpty()) {
            check(live.get(live.size() - 1));
            closeOne(rnd.nextInt(live.size()));
        }
    }

    private void closeOne(int i) {
        Snapshot s = live.remove(i);
        s.space().close();
        closed++;
    }

    private static TreeMap<Long, PageModel.Page> copyOf(World world, List<PageModel> models) {
        TreeMap<Long, PageModel.Page> all = new TreeMap<>();
        for (PageModel m : models) {
            all.putAll(m.pages);
        }
        all.putAll(world.sharedModel().pages);
        return copy(all);
    }

    private static TreeMap<Long, PageModel.Page> copy(TreeMap<Long, PageModel.Page> from) {
        TreeMap<Long, PageModel.Page> to = new TreeMap<>();
        for (Map.Entry<Long, PageModel.Page> e : from.entrySet()) {
            PageModel.Page p = e.getValue();
            PageModel.Page q = new PageModel.Page(p.prot, p.flags);
            q.data = p.data == null ? null : p.data.clone();
            to.put(e.getKey(), q);
        }
        return to;
    }

    private static boolean inShared(long va) {
        return va >= Layout.SHARED_START && va < Layout.SHARED_END;
    }

    /**
     * A few writes into resident writable 4 KiB pages (each copies or reuses a page shared with
     * the parent, and never faults a new one, whose THP policy the model would have to follow)
     * and one DONTNEED, applied to the model too.
     */
    private static void mutate(Snapshot s, SplittableRandom rnd) {
        List<Long> writable = new ArrayList<>();
        for (Map.Entry<Long, PageModel.Page> e : s.model().entrySet()) {
            PageModel.Page p = e.getValue();
            if (Prot.writable(p.prot) && Prot.readable(p.prot) && (p.flags & PageModel.VM_HUGETLB) == 0
                    && p.resident() && !inShared(e.getKey() << 12)) {
                writable.add(e.getKey());
            }
        }
        if (writable.isEmpty()) {
            return;
        }
        for (int i = 0; i < 8; i++) {
            long pn = writable.get(rnd.nextInt(writable.size()));
            int off = rnd.nextInt((int) Layout.PAGE - 8) & ~7;
            long value = rnd.nextLong();
            s.space().putLong((pn << 12) + off, value);
            PageModel.Page p = s.model().get(pn);
            if (p.data == null) {
                p.data = new byte[(int) Layout.PAGE];
            }
            for (int b = 0; b < 8; b++) {
                p.data[off + b] = (byte) (value >>> (8 * b));
            }
        }
        long pn = writable.get(rnd.nextInt(writable.size()));
        int n = 1 + rnd.nextInt(4);
        List<Long> dropped = new ArrayList<>();
        for (long q = pn; q < pn + n && s.model().containsKey(q) && isPlain(s.model().get(q)); q++) {
            dropped.add(q);
        }
        s.space().madvise(pn << 12, dropped.size() * Layout.PAGE, Advice.DONTNEED);
        for (long q : dropped) {
            s.model().get(q).data = null;
        }
    }

    private static boolean isPlain(PageModel.Page p) {
        return (p.flags & PageModel.VM_HUGETLB) == 0;
    }

    /** Mappings, RSS and every readable byte of {@code s} against its model. */
    private static void check(Snapshot s) {
        List<String> expected = PageModel.vmas(s.model());
        List<String> actual = s.space().mappings();
        if (!expected.equals(actual)) {
            throw new ModelMismatch("snapshot (fork depth " + s.depth() + ") mappings differ from its model\n  expected "
                    + expected + "\n  actual   " + actual);
        }
        long resident = 0;
        for (PageModel.Page p : s.model().values()) {
            resident += p.resident() ? 1 : 0;
        }
        VmStats stats = s.space().stats();
        if (stats.rssPages() != resident) {
            throw new ModelMismatch("snapshot (fork depth " + s.depth() + ") rssPages " + stats.rssPages() + " != "
                    + resident + " resident pages in its model");
        }
        byte[] buf = new byte[(int) Layout.PAGE];
        for (Map.Entry<Long, PageModel.Page> e : s.model().entrySet()) {
            long va = e.getKey() << 12;
            PageModel.Page p = e.getValue();
            if (!Prot.readable(p.prot) || ((p.flags & PageModel.VM_HUGETLB) != 0 && !p.resident())) {
                continue;
            }
            s.space().read(va, buf, 0, buf.length);
            for (int i = 0; i < buf.length; i++) {
                byte want = inShared(va) ? Layout.sharedByte(va + i) : p.data == null ? 0 : p.data[i];
                if (buf[i] != want) {
                    throw new ModelMismatch("snapshot (fork depth " + s.depth() + ") byte at 0x" + Long.toHexString(va + i)
                            + " is " + buf[i] + ", its model says " + want);
                }
            }
        }
    }

    /** For the report. */
    @Override
    public String toString() {
        return "forks=" + forks + " failed=" + failedForks + " closed=" + closed + " live=" + live.size()
                + (live.isEmpty() ? "" : " of depth " + live.stream().mapToInt(Snapshot::depth).max().orElse(0));
    }
}
