package dev.offmm.core;

import dev.offmm.core.pgtable.Entries;

import java.lang.foreign.MemorySegment;

/**
 * The accesses of an {@link Mmu} that span pages: bulk copies and the single accesses that
 * straddle a page boundary. Each translates every page it will touch within one TLB generation
 * first (translating again if the generation moved meanwhile), then moves the bytes: the
 * translations of one step stay safe to use until the context publishes a newer generation, which
 * only its own next translation does.
 *
 * <p>Confined to the {@link Mmu}'s thread, like the {@code Mmu} itself.
 */
final class BulkCopy {
    /** Pages translated up front by one bulk copy step. */
    private static final int COPY_BATCH = 64;
    private static final long PAGE = Entries.PAGE_SIZE;

    private final Mmu mmu;
    private final MemorySegment region;
    /** Physical offsets of the pages of one bulk-copy batch. */
    private final long[] batchPa = new long[COPY_BATCH];

    BulkCopy(Mmu mmu, MemorySegment region) {
        this.mmu = mmu;
        this.region = region;
    }

    /**
     * Copies {@code len} bytes between {@code va} and {@code buf[off ..]} with the semantics of a
     * CPU's string copy: if it faults, every byte before the first page it could not access has
     * been copied, none after, and the {@link FaultException} says how many. It works in batches
     * of up to {@value #COPY_BATCH} pages: translate every page of a batch first (faulting as
     * needed), then stream the bytes of the pages translated.
     */
    void copy(long va, MemorySegment buf, long off, long len, boolean write) {
        if (va < 0 || va >= Entries.USER_END) {
            throw new FaultException(FaultException.Kind.MAPERR, va, write);
        }
        long total = len;
        long limit = Math.min(len, Entries.USER_END - va);
        while (limit > 0) {
            int pages;
            long batchLen;
            long gen;
            FaultException fault;
            do {
                gen = mmu.generation();
                pages = 0;
                batchLen = 0;
                fault = null;
                long a = va;
                while (pages < COPY_BATCH && batchLen < limit) {
                    long chunk = Math.min(limit - batchLen, PAGE - Entries.pageOffset(a));
                    try {
                        batchPa[pages] = mmu.translate(a, write);
                    } catch (FaultException e) {
                        fault = e;
                        break;
                    }
                    pages++;
                    a += chunk;
                    batchLen += chunk;
                }
            } while (mmu.generation() != gen);
            stream(va, buf, off, pages, batchLen, write);
            va += batchLen;
            off += batchLen;
            limit -= batchLen;
            len -= batchLen;
            if (fault != null) {
                throw new FaultException(fault.kind(), fault.address(), write, total - len);
            }
        }
        if (len > 0) {
            throw new FaultException(FaultException.Kind.MAPERR, Entries.USER_END, write, total - len);
        }
    }

    /** Moves the bytes of {@code pages} translated pages, {@code batchLen} bytes from {@code va}. */
    private void stream(long va, MemorySegment buf, long off, int pages, long batchLen, boolean write) {
        long a = va;
        long o = off;
        for (int p = 0; p < pages; p++) {
            long chunk = Math.min(va + batchLen - a, PAGE - Entries.pageOffset(a));
            if (write) {
                MemorySegment.copy(buf, o, region, batchPa[p], chunk);
            } else {
                MemorySegment.copy(region, batchPa[p], buf, o, chunk);
            }
            a += chunk;
            o += chunk;
        }
    }

    /** Reads {@code bytes} (at most 8) little-endian bytes at {@code va}, which cross into the next page. */
    long crossPageGet(long va, int bytes) {
        long head = PAGE - Entries.pageOffset(va);
        translatePair(va, head, false);
        long v = 0;
        for (int i = 0; i < bytes; i++) {
            v |= (FrameBytes.getBytePlain(region, pa(i, head)) & 0xffL) << (Byte.SIZE * i);
        }
        return v;
    }

    /**
     * Writes the low {@code bytes} (at most 8) bytes of {@code value} at {@code va}, crossing into
     * the next page. Both pages are translated for writing before any byte is stored, so a
     * store that faults on either page writes nothing, as on hardware.
     */
    void crossPagePut(long va, long value, int bytes) {
        long head = PAGE - Entries.pageOffset(va);
        translatePair(va, head, true);
        for (int i = 0; i < bytes; i++) {
            FrameBytes.setBytePlain(region, pa(i, head), (byte) (value >>> (Byte.SIZE * i)));
        }
    }

    /** Translates the page of {@code va} and the next one within one generation, into the batch. */
    private void translatePair(long va, long head, boolean write) {
        long gen;
        do {
            gen = mmu.generation();
            batchPa[0] = mmu.translate(va, write);
            batchPa[1] = mmu.translate(va + head, write);
        } while (mmu.generation() != gen);
    }

    /** The physical offset of byte {@code i} of a two-page access whose first page holds {@code head} bytes. */
    private long pa(int i, long head) {
        return i < head ? batchPa[0] + i : batchPa[1] + (i - head);
    }
}
