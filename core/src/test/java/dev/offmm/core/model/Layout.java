package dev.offmm.core.model;

import java.util.ArrayList;
import java.util.List;

/**
 * Where each thread of a model run may map: a few small zones per thread, all disjoint, so that
 * every thread's model is sequential and exact. Interference between threads comes from the
 * tables and locks they share:
 * <ul>
 *   <li>the windows {@code [BASE + t * WINDOW, BASE + (t + 1) * WINDOW)} lie in one 1 GiB range
 *       (one PMD table, so one PMD lock or {@code page_table_lock} for every thread), and BASE is
 *       not 2 MiB aligned, so the last zone of thread t and the first zone of thread t + 1 share a
 *       PTE table (and its split lock, and the free_pgtables floor/ceiling decisions);</li>
 *   <li>the shared read-mostly window sits right below thread 0's first zone, in the same PTE
 *       table;</li>
 *   <li>each thread also has a private zone across a 1 GiB boundary (two PMD tables) and one
 *       across a 512 GiB boundary (two PUD tables), so table freeing happens at every level;</li>
 *   <li>and a 2 MiB-aligned huge zone of two 2 MiB pages ({@link #hugeZone}), where THP and
 *       hugetlb mappings are made, split by partial operations, and collapsed.</li>
 * </ul>
 * Zones of neighbouring threads are adjacent, so their VMAs may merge into one: per-thread
 * checks clip {@code mappings()} to the thread's zones.
 */
final class Layout {
    static final long PAGE = 4096;
    static final long MIB = 1L << 20;
    static final long GIB = 1L << 30;
    /** Start of thread 0's window: inside [4 GiB, 5 GiB), 1 MiB + 3 pages past a 2 MiB boundary. */
    static final long BASE = 4 * GIB + MIB + 3 * PAGE;
    /** Bytes per thread window. */
    static final long WINDOW = 64 * MIB;
    /** Pages per edge and middle zone. */
    static final int ZONE_PAGES = 48;
    /** Pages of the shared window. */
    static final int SHARED_PAGES = 32;
    /** The shared window: right below thread 0's window. */
    static final long SHARED_START = BASE - SHARED_PAGES * PAGE;
    static final long SHARED_END = BASE;
    /** Bytes of a huge zone: two 2 MiB pages. */
    static final long HUGE_ZONE = 4 * MIB;
    /** Bytes of a 2 MiB page. */
    static final long HUGE = 2 * MIB;

    private Layout() {
    }

    /** The zones of thread {@code t}, as {start, end} address pairs, sorted. */
    static List<long[]> zones(int t) {
        long w = BASE + t * WINDOW;
        long mid = (w + WINDOW / 2 + 2 * MIB - 1) & -(2 * MIB);
        long half = ZONE_PAGES / 2 * PAGE;
        long gib = (16L + 2 * t) * GIB;
        long pgd = (t + 1L) * 512 * GIB;
        List<long[]> z = new ArrayList<>();
        z.add(new long[] {w, w + ZONE_PAGES * PAGE});
        z.add(new long[] {mid - half, mid + half});
        z.add(new long[] {w + WINDOW - ZONE_PAGES * PAGE, w + WINDOW});
        z.add(new long[] {gib - half, gib + half});
        z.add(new long[] {pgd - 16 * PAGE, pgd + 16 * PAGE});
        z.add(hugeZone(t));
        return z;
    }

    /** The huge zone of thread {@code t}: 2 MiB aligned, 8 MiB into its window, {@link #HUGE_ZONE} long. */
    static long[] hugeZone(int t) {
        long start = (BASE + t * WINDOW + 8 * MIB + HUGE - 1) & -HUGE;
        return new long[] {start, start + HUGE_ZONE};
    }

    /** Whether {@code z} is a huge zone. */
    static boolean isHuge(long[] z) {
        return z[1] - z[0] == HUGE_ZONE && (z[0] & (HUGE - 1)) == 0;
    }

    /** Whether {@code [start, end)} overlaps any zone of any of {@code threads} or the shared window. */
    static boolean overlapsAnyZone(long start, long end, int threads) {
        if (start < SHARED_END && end > SHARED_START) {
            return true;
        }
        for (int t = 0; t < threads; t++) {
            for (long[] z : zones(t)) {
                if (start < z[1] && end > z[0]) {
                    return true;
                }
            }
        }
        return false;
    }

    /** The byte of the shared window's fixed pattern at {@code va}. */
    static byte sharedByte(long va) {
        long i = va - SHARED_START;
        return (byte) (i * 131 + (i >>> 12) * 17 + 5);
    }
}
