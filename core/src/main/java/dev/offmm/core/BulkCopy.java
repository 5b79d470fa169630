package dev.offmm.core;

import dev.offmm.core.pgtable.Entries;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The accesses of an {@link Mmu} that span pages: bulk copies and the single accesses that
 * straddle a page boundary, each one access (or, for long copies, one access per
 * {@value #PAGES_PER_ACCESS} pages, so that a copy of gigabytes holds no grace period for long).
 *
 * <p>A bulk copy translates a page and copies it at once: a translation stays usable for as long
 * as the access that took it, so the copy always makes progress. A copy of at most a page that
 * crosses one boundary translates both pages first and moves its bytes in one copy where it can;
 * only if its second page faults is its first page translated again.
 * A page-crossing single access translates both pages first, within one TLB generation, so that
 * it happens whole or not at all.
 *
 * <p>Confined to the {@link Mmu}'s thread, like the {@code Mmu} itself: each entry point checks
 * the thread before it touches the context's slot, so its {@code finally} ends only the owner's
 * access.
 */
final class BulkCopy {
    /** Pages a bulk copy moves in one access before it leaves it and enters again. */
    private static final int PAGES_PER_ACCESS = 64;
    private static final long PAGE = Entries.PAGE_SIZE;

    private final Mmu mmu;
    private final MemorySegment region;
    /** The physical offsets of a page-crossing access's two pages. */
    private long firstPa;
    private long secondPa;
    /** For tests: runs inside the access, after the first page of a copy is translated. */
    private Runnable afterFirstTranslation;

    BulkCopy(Mmu mmu, MemorySegment region) {
        this.mmu = mmu;
        this.region = region;
    }

    /** For tests: {@code hook} runs inside each copy's access, after its first page is translated. */
    void afterFirstTranslationForTesting(Runnable hook) {
        this.afterFirstTranslation = hook;
    }

    /**
     * Copies {@code len} bytes between {@code va} and {@code buf[off ..]} with the semantics of a
     * CPU's string copy: if it faults, every byte before the first page it could not access has
     * been copied, none after, and the {@link FaultException} says how many. Other failures (the
     * address space closed meanwhile) propagate without a count. The other side is {@code array}
     * if it is not null (so that a copy into an array allocates no segment), else {@code buf}.
     */
    void copy(long va, MemorySegment buf, byte[] array, long off, long len, boolean write) {
        mmu.checkThread();
        long done = 0;
        int pages = 0;
        try {
            while (done < len) {
                long a = va + done;
                long chunk = Math.min(len - done, PAGE - Entries.pageOffset(a));
                // On a fault translate leaves the access; the bytes before this page are all copied.
                long pa = translateOrReport(a, write, done);
                if (pages == 0 && afterFirstTranslation != null) {
                    afterFirstTranslation.run();
                }
                if (array != null) {
                    move(array, (int) (off + done), pa, (int) chunk, write);
                } else if (write) {
                    MemorySegment.copy(buf, off + done, region, pa, chunk);
                } else {
                    MemorySegment.copy(region, pa, buf, off + done, chunk);
                }
                done += chunk;
                if (++pages % PAGES_PER_ACCESS == 0) {
                    mmu.exit();
                }
            }
        } finally {
            mmu.exit();
        }
    }

    /**
     * A copy of at most a page between {@code va} and {@code buf[off ..]} that crosses one page
     * boundary: both pages are translated within one generation (the test hook runs after both),
     * then the bytes move in one copy where the pages are contiguous (two 4 KiB pages of one 2 MiB
     * page) or in two. Allocates nothing. If the second page faults, no byte has moved and the
     * access is over: the first page is translated again, in an access of its own, and copied, then
     * the fault is reported with the first page's bytes, as a string copy reports it.
     */
    void copyTwoPages(long va, byte[] buf, int off, int len, boolean write) {
        mmu.checkThread();
        int head = (int) (PAGE - Entries.pageOffset(va));
        try {
            long gen;
            do {
                gen = mmu.generation();
                firstPa = translateOrReport(va, write, 0);
                try {
                    secondPa = mmu.translate(va + head, write);
                } catch (FaultException e) {
                    copyFirstPage(va, buf, off, head, write);
                    throw reported(e, write, head);
                }
            } while (mmu.generation() != gen);
            if (afterFirstTranslation != null) {
                afterFirstTranslation.run();
            }
            if (secondPa == firstPa + head) {
                move(buf, off, firstPa, len, write);
            } else {
                move(buf, off, firstPa, head, write);
                move(buf, off + head, secondPa, len - head, write);
            }
        } finally {
            mmu.exit();
        }
    }

    private void copyFirstPage(long va, byte[] buf, int off, int head, boolean write) {
        long pa = translateOrReport(va, write, 0);
        try {
            move(buf, off, pa, head, write);
        } finally {
            mmu.exit();
        }
    }

    /** {@code mmu.translate(va, write)}; a fault is reported as one after {@code done} bytes of a copy. */
    private long translateOrReport(long va, boolean write, long done) {
        try {
            return mmu.translate(va, write);
        } catch (FaultException e) {
            throw reported(e, write, done);
        }
    }

    /** The fault of a copy that had moved {@code done} bytes when it met {@code e}. */
    private static FaultException reported(FaultException e, boolean write, long done) {
        FaultException f = new FaultException(e.kind(), e.address(), write, done);
        f.initCause(e);
        return f;
    }

    private void move(byte[] buf, int off, long pa, int len, boolean write) {
        if (write) {
            MemorySegment.copy(buf, off, region, ValueLayout.JAVA_BYTE, pa, len);
        } else {
            MemorySegment.copy(region, ValueLayout.JAVA_BYTE, pa, buf, off, len);
        }
    }

    /** Reads {@code bytes} (at most 8) little-endian bytes at {@code va}, which cross into the next page. */
    long crossPageGet(long va, int bytes) {
        mmu.checkThread();
        long head = PAGE - Entries.pageOffset(va);
        try {
            translatePair(va, head, false);
            long v = 0;
            for (int i = 0; i < bytes; i++) {
                v |= (FrameBytes.getBytePlain(region, pa(i, head)) & 0xffL) << (Byte.SIZE * i);
            }
            return v;
        } finally {
            mmu.exit();
        }
    }

    /**
     * Writes the low {@code bytes} (at most 8) bytes of {@code value} at {@code va}, crossing into
     * the next page. Both pages are translated for writing before any byte is stored, so a
     * store that faults on either page writes nothing, as on hardware.
     */
    void crossPagePut(long va, long value, int bytes) {
        mmu.checkThread();
        long head = PAGE - Entries.pageOffset(va);
        try {
            translatePair(va, head, true);
            for (int i = 0; i < bytes; i++) {
                FrameBytes.setBytePlain(region, pa(i, head), (byte) (value >>> (Byte.SIZE * i)));
            }
        } finally {
            mmu.exit();
        }
    }

    /**
     * Translates the page of {@code va} and the next one within one generation: if translating
     * the second faults (leaving the access meanwhile) and the generation moved, the first
     * translation may be stale, so both are taken again.
     */
    private void translatePair(long va, long head, boolean write) {
        long gen;
        do {
            gen = mmu.generation();
            firstPa = mmu.translate(va, write);
            secondPa = mmu.translate(va + head, write);
        } while (mmu.generation() != gen);
    }

    /** The physical offset of byte {@code i} of a two-page access whose first page holds {@code head} bytes. */
    private long pa(int i, long head) {
        return i < head ? firstPa + i : secondPa + (i - head);
    }
}
