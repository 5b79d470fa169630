package dev.offmm.core.model;

import dev.offmm.core.Advice;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Prot;

import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Seeded random operations for one thread, inside its zones. Addresses lean towards pages the
 * model has mapped (so most accesses hit something), lengths are a few pages (so operations are
 * cheap), and accesses sometimes straddle a page boundary.
 */
final class OpGenerator {
    private static final long PAGE = Layout.PAGE;
    private static final int[] PROTS = {Prot.READ | Prot.WRITE, Prot.READ | Prot.WRITE, Prot.READ | Prot.WRITE, Prot.READ,
        Prot.WRITE, Prot.NONE};

    private final SplittableRandom rnd;
    private final OpRunner runner;
    private final List<long[]> zones;
    private final int thread;
    /** Op index from which to emit one rogue write into a writable page (self-test), or -1. */
    private final long rogueAt;
    private long index;
    private boolean rogueDone;

    OpGenerator(long seed, OpRunner runner, long rogueAt) {
        this.rnd = new SplittableRandom(seed);
        this.runner = runner;
        this.zones = runner.zones;
        this.thread = runner.thread;
        this.rogueAt = rogueAt;
    }

    Op next() {
        long i = index++;
        long[] z = zones.get(rnd.nextInt(zones.size()));
        if (i >= rogueAt && rogueAt >= 0 && !rogueDone) {
            for (Map.Entry<Long, PageModel.Page> e : runner.model.pages.entrySet()) {
                if (Prot.writable(e.getValue().prot)) {
                    rogueDone = true;
                    return new Op(Op.Kind.ROGUE_WRITE, e.getKey() << 12 | 64, 0, 0, 0x7e57_dead_beefL);
                }
            }
        }
        if (Layout.isHuge(z) && rnd.nextInt(100) < 6) {
            return hugeOp(z);
        }
        int w = rnd.nextInt(1000);
        if (w < 70) {
            return mmap(z);
        }
        if (w < 78) {
            return new Op(Op.Kind.MMAP_ANYWHERE, 0, pages(1, 4) * PAGE - rnd.nextInt(2) * 100, prot(), rnd.nextLong());
        }
        if (w < 125) {
            long[] r = range(z);
            return new Op(Op.Kind.MUNMAP, r[0], r[1], 0, 0);
        }
        if (w < 170) {
            long[] r = rnd.nextInt(3) == 0 ? range(z) : mappedRange(z);
            return new Op(Op.Kind.MPROTECT, r[0], rnd.nextInt(50) == 0 ? 0 : r[1], prot(), 0);
        }
        if (w < 215) {
            long[] r = rnd.nextInt(3) == 0 ? range(z) : mappedRange(z);
            int[] advice = {Advice.DONTNEED, Advice.DONTNEED, Advice.DONTNEED, Advice.WILLNEED, Advice.HUGEPAGE,
                Advice.NOHUGEPAGE, Advice.COLLAPSE};
            return new Op(Op.Kind.MADVISE, r[0], rnd.nextInt(50) == 0 ? 0 : r[1], advice[rnd.nextInt(advice.length)], 0);
        }
        if (w < 245) {
            return new Op(Op.Kind.FAULT, address(z, 1), 0, rnd.nextInt(2), 0);
        }
        if (w < 555) {
            int width = new int[] {1, 4, 8, 8}[rnd.nextInt(4)];
            boolean put = rnd.nextBoolean();
            return new Op(put ? Op.Kind.MMU_PUT : Op.Kind.MMU_GET, address(z, width), 0, width, rnd.nextLong());
        }
        if (w < 595) {
            long va = address(z, 8) & -8;
            long expected = rnd.nextBoolean() && runner.model.page(va) != null ? runner.model.getLong(va, 8) : rnd.nextLong();
            return new Op(Op.Kind.MMU_ATOMIC, rnd.nextInt(40) == 0 ? va + 4 : va, expected, rnd.nextInt(4), rnd.nextLong());
        }
        if (w < 675) {
            Op.Kind k = new Op.Kind[] {Op.Kind.MMU_READ, Op.Kind.MMU_WRITE, Op.Kind.AS_READ, Op.Kind.AS_WRITE}[rnd.nextInt(4)];
            long va = address(z, 1);
            long len = Math.min(1 + rnd.nextInt((int) (3 * PAGE)), z[1] - va);
            return new Op(k, va, len, 0, rnd.nextLong());
        }
        if (w < 795) {
            int width = rnd.nextBoolean() ? 1 : 8;
            boolean put = rnd.nextBoolean();
            return new Op(put ? Op.Kind.AS_PUT : Op.Kind.AS_GET, address(z, width), 0, width, rnd.nextLong());
        }
        if (w < 840) {
            return pinOp(z);
        }
        if (w < 845) {
            return new Op(Op.Kind.IDLE, 0, 0, 0, 0);
        }
        if (w < 855) {
            return new Op(Op.Kind.CHECK_MAPPINGS, 0, 0, 0, 0);
        }
        if (w < 990) {
            return sharedOp();
        }
        return new Op(Op.Kind.BAD_ARGS, address(z, 1), 0, rnd.nextInt(17), 0);
    }

    private Op mmap(long[] z) {
        long[] r = range(z);
        int flags = switch (rnd.nextInt(10)) {
            case 0, 1, 2, 3 -> MapFlags.FIXED;
            case 4, 5 -> MapFlags.FIXED_NOREPLACE;
            default -> MapFlags.NONE;
        };
        if (rnd.nextInt(4) == 0) {
            flags |= MapFlags.POPULATE;
        }
        if (rnd.nextInt(10) == 0) {
            flags |= MapFlags.NORESERVE;
        }
        long addr = flags == MapFlags.NONE && rnd.nextBoolean() ? r[0] + rnd.nextInt((int) PAGE) : r[0];
        return new Op(Op.Kind.MMAP, addr, r[1], prot() | flags << 8, 0);
    }

    /**
     * In the huge zone: a FIXED mapping of one or both 2 MiB pages, THP-advised or hugetlb
     * (sometimes with a length that is not a multiple of 2 MiB, which hugetlb refuses), or a
     * HUGEPAGE advice or a collapse over whole 2 MiB pages.
     */
    private Op hugeOp(long[] z) {
        long start = z[0] + (rnd.nextBoolean() ? 0 : Layout.HUGE);
        long len = start == z[0] && rnd.nextBoolean() ? 2 * Layout.HUGE : Layout.HUGE;
        return switch (rnd.nextInt(6)) {
            case 0, 1 -> {
                int flags = MapFlags.FIXED | (rnd.nextBoolean() ? MapFlags.HUGETLB : 0)
                        | (rnd.nextInt(4) == 0 ? MapFlags.POPULATE : 0);
                long l = rnd.nextInt(8) == 0 ? len - PAGE : len;
                yield new Op(Op.Kind.MMAP, start, l, prot() | flags << 8, 0);
            }
            case 2, 3 -> new Op(Op.Kind.MADVISE, start, len, Advice.HUGEPAGE, 0);
            default -> new Op(Op.Kind.MADVISE, start, len, Advice.COLLAPSE, 0);
        };
    }

    private Op pinOp(long[] z) {
        int s = rnd.nextInt(4);
        int state = runner.pinState(s);
        int kind = rnd.nextInt(4);
        if (state == 0 || kind == 0) {
            int arg = s | (rnd.nextBoolean() ? 0x10 : 0) | (rnd.nextBoolean() ? 0x20 : 0);
            return new Op(Op.Kind.PIN, address(z, 1), 0, arg, 0);
        }
        return switch (kind) {
            case 1 -> new Op(Op.Kind.UNPIN, 0, 0, s, 0);
            case 2 -> new Op(Op.Kind.PIN_WRITE, rnd.nextInt((int) PAGE), 0, s, rnd.nextLong());
            default -> new Op(Op.Kind.PIN_CHECK, 0, 0, s, 0);
        };
    }

    private Op sharedOp() {
        long span = Layout.SHARED_END - Layout.SHARED_START;
        long va = Layout.SHARED_START + rnd.nextLong(span - 8);
        int kind = rnd.nextInt(20);
        if (thread == 0 && kind == 0) {
            return new Op(Op.Kind.SHARED_MPROTECT, 0, 0, rnd.nextBoolean() ? Prot.READ : Prot.READ | Prot.WRITE, 0);
        }
        if (thread == 0 && kind <= 2) {
            return new Op(Op.Kind.SHARED_WRITE, va, 0, rnd.nextInt(2), 0);
        }
        if (kind == 3) {
            return new Op(Op.Kind.SHARED_PIN, va, 0, 0, 0);
        }
        return new Op(Op.Kind.SHARED_READ, va, 0, rnd.nextInt(2), 0);
    }

    private int prot() {
        return PROTS[rnd.nextInt(PROTS.length)];
    }

    private long pages(int min, int max) {
        return min + rnd.nextInt(max - min + 1);
    }

    /** A range in {@code z}: {start, length in bytes}; the length is sometimes not a multiple of the page. */
    private long[] range(long[] z) {
        long zpages = (z[1] - z[0]) / PAGE;
        long s = rnd.nextLong(zpages);
        long n = 1 + Math.min(rnd.nextInt(rnd.nextBoolean() ? 4 : 16), zpages - s - 1);
        long len = n * PAGE - (rnd.nextInt(5) == 0 ? rnd.nextInt((int) PAGE - 1) : 0);
        return new long[] {z[0] + s * PAGE, len};
    }

    /** A range of consecutive mapped pages in {@code z} (where the model has some), else any range. */
    private long[] mappedRange(long[] z) {
        Long k = runner.model.pages.ceilingKey((z[0] + rnd.nextLong((z[1] - z[0]) / PAGE) * PAGE) >>> 12);
        if (k == null || k >= z[1] >>> 12) {
            k = runner.model.pages.ceilingKey(z[0] >>> 12);
        }
        if (k == null || k >= z[1] >>> 12) {
            return range(z);
        }
        long n = 1;
        while (n < 16 && k + n < z[1] >>> 12 && runner.model.pages.containsKey(k + n)) {
            n++;
        }
        return new long[] {k << 12, (1 + rnd.nextLong(n)) * PAGE};
    }

    /**
     * An address for an access of {@code width} bytes in {@code z}: mostly in a page the model has
     * mapped; 8-aligned, anywhere, or near the end of the page so that the access straddles into
     * the next one (when that page is still in the zone).
     */
    private long address(long[] z, int width) {
        long zpages = (z[1] - z[0]) / PAGE;
        long page = z[0] + rnd.nextLong(zpages) * PAGE;
        if (rnd.nextInt(5) != 0) {
            Long k = runner.model.pages.ceilingKey(page >>> 12);
            if (k == null || k >= z[1] >>> 12) {
                k = runner.model.pages.ceilingKey(z[0] >>> 12);
            }
            if (k != null && k < z[1] >>> 12) {
                page = k << 12;
            }
        }
        long off = switch (rnd.nextInt(4)) {
            case 0, 1 -> rnd.nextInt((int) PAGE / 8) * 8L;
            case 2 -> rnd.nextInt((int) PAGE - width + 1);
            default -> PAGE - 1 - rnd.nextInt(7);
        };
        if (off + width > PAGE && page + PAGE >= z[1]) {
            off = PAGE - width;
        }
        return page + off;
    }
}
