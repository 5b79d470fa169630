package dev.offmm.examples.arena;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.Mmu;
import dev.offmm.core.VmConfig;
import dev.offmm.offheap.PhysicalMemory;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * Resident memory over allocate / touch / reset cycles: offmm's {@link ReserveCommitArena}
 * beside {@code Arena.ofConfined()} with a slicing allocator (reset = close the arena, open a new
 * one), the same slicing allocator reused over one segment (reset = a new slicing allocator; no
 * memory comes back), and {@code Arena.ofShared()} allocating per block (reset = close). After
 * every step it prints the process's {@code VmRSS} (from {@code /proc/self/status}, minus the
 * value before the first cycle), the arena's resident pages as offmm counts them
 * ({@code rssPages}), and what the host holds of offmm's frame region. offmm runs three times:
 * the default arena, one that keeps its page tables on reset, and one with huge pages.
 *
 * <p>Two figures for offmm, because its physical memory gives frames back to the host lazily:
 * a reset drops the pages from the address space at once ({@code rssPages} 0), but the freed
 * frames stay committed in the host until they have been free for the report delay (2 s by
 * default, {@code reportMs} here), so process RSS falls only then, and only for whole free 2 MiB
 * blocks: with kept page tables (one inside every 2 MiB block of frames) it does not fall at all.
 * Struct pages (64 bytes per frame ever used, 1/64 of the peak) stay until the memory closes;
 * the per-thread frame cache keeps up to 2 MiB.
 *
 * <p>Usage: {@code ArenaRssBench [totalMiB=256] [blockKiB=64] [cycles=2] [reportMs=100]}.
 */
public final class ArenaRssBench {
    private static final long PAGE = 4096;
    private static final long ALIGN = 8;

    private final PrintStream out;
    private final long total;
    private final long block;
    private final int cycles;
    private final long reportMs;
    /** VmRSS before the current arena's first cycle. */
    private long baseline;

    private ArenaRssBench(PrintStream out, long total, long block, int cycles, long reportMs) {
        this.out = out;
        this.total = total;
        this.block = block;
        this.cycles = cycles;
        this.reportMs = reportMs;
    }

    /** Runs the cycles for all four and prints the table; see the class comment for the arguments. */
    public static void main(String[] args) throws InterruptedException {
        long[] a;
        try {
            a = parse(args);
        } catch (IllegalArgumentException e) {
            // A usage error: one line and status 2, as every offmm command answers one.
            System.err.println("offmm example arena-rss: " + e.getMessage()
                    + "; usage: arena-rss [totalMiB=256] [blockKiB=64] [cycles=2] [reportMs=100]");
            System.exit(2);
            return;
        }
        run(System.out, a[0] << 20, a[1] << 10, (int) a[2], a[3]);
    }

    /**
     * {@return totalMiB, blockKiB, cycles and reportMs from {@code args}, defaults for those not given}
     *
     * @throws IllegalArgumentException for an argument that is not an integer in range, or one too many
     */
    static long[] parse(String[] args) {
        if (args.length > 4) {
            throw new IllegalArgumentException("unexpected argument '" + args[4] + "'");
        }
        long totalMiB = arg(args, 0, "totalMiB", 256, 1, 16 << 10);
        long blockKiB = arg(args, 1, "blockKiB", 64, 4, totalMiB << 10);
        long cycles = arg(args, 2, "cycles", 2, 1, 1000);
        long reportMs = arg(args, 3, "reportMs", 100, 0, 60_000);
        if ((blockKiB & 3) != 0) {
            throw new IllegalArgumentException("blockKiB=" + blockKiB + " (expected a multiple of 4)");
        }
        return new long[] {totalMiB, blockKiB, cycles, reportMs};
    }

    /**
     * Runs {@code cycles} cycles of {@code total} bytes in blocks of {@code block} for each arena,
     * printing to {@code out}. Returns offmm's resident pages after the last resets (0 unless broken).
     */
    public static long run(PrintStream out, long total, long block, int cycles, long reportMs)
            throws InterruptedException {
        if (total <= 0 || block <= 0 || block > total || block % PAGE != 0 || cycles <= 0 || reportMs < 0) {
            throw new IllegalArgumentException("total=" + total + ", block=" + block + ", cycles=" + cycles
                    + ", reportMs=" + reportMs + " (expected 0 < block <= total, block a multiple of 4096)");
        }
        // A quiet pass first, so that the JVM's own growth (heap, code) happens before any baseline.
        PrintStream quiet = new PrintStream(java.io.OutputStream.nullOutputStream());
        new ArenaRssBench(quiet, Math.min(total, 16L << 20), Math.min(block, 16L << 20), 1, 0).all();
        ArenaRssBench b = new ArenaRssBench(out, total, block, cycles, reportMs);
        out.printf("%d MiB per cycle in %d KiB blocks, %d cycles; offmm reports free frames after %d ms%n",
                total >> 20, block >> 10, cycles, reportMs);
        out.printf("%-22s %5s %-22s %12s %14s %16s%n", "arena", "cycle", "after", "VmRSS+ MiB",
                "offmm rss MiB", "offmm host MiB");
        return b.all();
    }

    private long all() throws InterruptedException {
        long left = offmm("offmm reserve-commit", false, false);
        left += offmm("offmm keep tables", true, false);
        left += offmm("offmm huge pages", false, true);
        confinedSlicing();
        confinedSlicingReused();
        sharedPerBlock();
        return left;
    }

    private long offmm(String name, boolean keepTables, boolean hugePages) throws InterruptedException {
        begin();
        long capacity = (total + total / 8 + (16L << 20) + (2L << 20) - 1) & -(2L << 20);
        long left;
        try (PhysicalMemory memory = PhysicalMemory.builder().capacity(capacity)
                .reportFreeAfter(Duration.ofMillis(reportMs)).build();
             AddressSpace as = AddressSpace.create(memory, VmConfig.defaults());
             Mmu mmu = as.attach();
             ReserveCommitArena arena = ReserveCommitArena.builder(as).reserve(Math.max(total * 4, 1L << 30))
                     .keepPageTables(keepTables).hugePages(hugePages).build()) {
            for (int c = 1; c <= cycles; c++) {
                for (long done = 0; done < total; done += block) {
                    long a = arena.allocate(block, ALIGN);
                    for (long off = 0; off < block; off += PAGE) {
                        mmu.putLong(a + off, off);
                    }
                }
                row(name, c, "allocate+touch", as, memory);
                arena.reset();
                row(name, c, "reset", as, memory);
                long t0 = System.nanoTime();
                // The reporter gives back blocks free for reportMs to 1.25 reportMs; sample well after.
                for (long at : new long[] {5 * reportMs, 20 * reportMs}) {
                    Thread.sleep(Math.max(0, at - (System.nanoTime() - t0) / 1_000_000));
                    row(name, c, "reset + " + at + " ms", as, memory);
                }
            }
            left = as.stats().rssPages();
        }
        return left;
    }

    private void confinedSlicing() throws InterruptedException {
        begin();
        for (int c = 1; c <= cycles; c++) {
            Arena arena = Arena.ofConfined();
            SegmentAllocator slicing = SegmentAllocator.slicingAllocator(arena.allocate(total, PAGE));
            touchAll(slicing);
            row("confined + slicing", c, "allocate+touch", null, null);
            arena.close();
            row("confined + slicing", c, "close (reset)", null, null);
            settle();
        }
    }

    private void confinedSlicingReused() throws InterruptedException {
        begin();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment segment = arena.allocate(total, PAGE);
            for (int c = 1; c <= cycles; c++) {
                touchAll(SegmentAllocator.slicingAllocator(segment));
                row("confined slicing reused", c, "allocate+touch", null, null);
                // The reset: a new slicing allocator over the same segment. Nothing comes back.
                row("confined slicing reused", c, "new slicer (reset)", null, null);
                settle();
            }
        }
        row("confined slicing reused", cycles, "close", null, null);
    }

    private void sharedPerBlock() throws InterruptedException {
        begin();
        for (int c = 1; c <= cycles; c++) {
            Arena arena = Arena.ofShared();
            touchAll(arena);
            row("shared per block", c, "allocate+touch", null, null);
            arena.close();
            row("shared per block", c, "close (reset)", null, null);
            settle();
        }
    }

    private void touchAll(SegmentAllocator allocator) {
        for (long done = 0; done < total; done += block) {
            MemorySegment s = allocator.allocate(block, ALIGN);
            for (long off = 0; off < block; off += PAGE) {
                s.set(ValueLayout.JAVA_LONG_UNALIGNED, off, off);
            }
        }
    }

    private void settle() throws InterruptedException {
        Thread.sleep(200);
    }

    /** Starts an arena's rows: a new baseline, after a collection, so the JVM's own growth stays out. */
    private void begin() throws InterruptedException {
        System.gc();
        Thread.sleep(200);
        baseline = vmRssBytes();
    }

    private void row(String arena, int cycle, String after, AddressSpace as, PhysicalMemory memory) {
        double rss = (vmRssBytes() - baseline) / 1048576.0;
        String pages = as == null ? "-" : String.format("%.2f", as.stats().rssPages() * PAGE / 1048576.0);
        String host = memory == null ? "-" : String.format("%.2f", memory.committedBytes() / 1048576.0);
        out.printf("%-22s %5d %-22s %12.1f %14s %16s%n", arena, cycle, after, rss, pages, host);
    }

    /** The process's resident set, from {@code /proc/self/status} ({@code VmRSS}), or -1 where there is none. */
    static long vmRssBytes() {
        Path status = Path.of("/proc/self/status");
        if (!Files.isReadable(status)) {
            return -1;
        }
        try {
            List<String> lines = Files.readAllLines(status);
            for (String l : lines) {
                if (l.startsWith("VmRSS:")) {
                    String[] f = l.trim().split("\\s+");
                    return Long.parseLong(f[1]) << 10;
                }
            }
            return -1;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static long arg(String[] args, int i, String name, long dflt, long min, long max) {
        if (args.length <= i) {
            return dflt;
        }
        long v;
        try {
            v = Long.parseLong(args[i]);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + "=" + args[i] + " (expected an integer)", e);
        }
        if (v < min || v > max) {
            throw new IllegalArgumentException(name + "=" + v + " (expected " + min + " to " + max + ")");
        }
        return v;
    }
}
