package dev.offmm.core.model;

import dev.offmm.core.FaultException;
import dev.offmm.core.Prot;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The reference model of the pages one thread owns: for each mapped page its protection, its
 * VMA flags, and its bytes. A page's bytes are {@code null} while it has no frame of its own
 * (never written, or dropped by DONTNEED: it reads as zeros, through the zero page); a byte
 * array once a write fault gave it a frame. A pinned page shares that array with its pin while
 * the frame stays mapped, exactly as the frame is shared, so writes through either are seen by
 * both; when the frame is unmapped the page gets a new array and the pin keeps the old one.
 *
 * <p>Under random fault injection a POPULATE may stop at any page, so a page can also be
 * {@code maybe} resident: its bytes are zeros either way, and the first observation that tells
 * (a write, a pin, a page-table walk) settles it.
 */
final class PageModel {
    /** Mirrors of the VMA flags; only equality (for merging) and the huge flags (for the text) matter. */
    static final int VM_HUGEPAGE = 1;
    static final int VM_NOHUGEPAGE = 2;
    static final int VM_NORESERVE = 4;
    static final int VM_HUGETLB = 8;
    static final long HUGE = Layout.HUGE;
    static final long PAGE = Layout.PAGE;

    /** No failure expected: the access resolves. */
    static final int OK = 0;

    /** One mapped page. */
    static final class Page {
        int prot;
        int flags;
        byte[] data;
        boolean maybe;

        Page(int prot, int flags) {
            this.prot = prot;
            this.flags = flags;
        }

        boolean resident() {
            return data != null;
        }
    }

    /** The expected failure of an access: a kind at the first address that fails. */
    record Failure(FaultException.Kind kind, long address) {
    }

    /** Mapped pages by page number. */
    final TreeMap<Long, Page> pages = new TreeMap<>();

    Page page(long va) {
        return pages.get(va >>> 12);
    }

    /** Whether an access of the page holding {@code va} resolves, or why not. */
    FaultException.Kind check(long va, boolean write) {
        Page p = page(va);
        if (p == null) {
            return FaultException.Kind.MAPERR;
        }
        boolean ok = write ? Prot.writable(p.prot) : Prot.readable(p.prot);
        return ok ? null : FaultException.Kind.ACCERR;
    }

    /** A write fault on a mapped, writable page: it has its own frame from now on. */
    void touchWrite(Page p) {
        if (p.data == null) {
            p.data = new byte[(int) PAGE];
        }
        p.maybe = false;
    }

    /**
     * The pages of {@code [va, va + n)} translated in address order, as the Mmu's bulk copy and
     * cross-page stores do: each write-translated page gets its frame, and the first page that
     * fails stops the access there (its first byte in the range is the fault address). If the
     * real access failed with OOM at {@code oomAt} (fault injection), the model stops there too,
     * and the page there must otherwise have resolved.
     *
     * @return the failure, or {@code null} if every page resolves
     */
    Failure translateInOrder(long va, long n, boolean write, long oomAt) {
        long a = va;
        long end = va + n;
        while (a < end) {
            if (a == oomAt) {
                return check(a, write) == null ? new Failure(FaultException.Kind.OOM, a) : new Failure(check(a, write), a);
            }
            FaultException.Kind k = check(a, write);
            if (k != null) {
                return new Failure(k, a);
            }
            if (write) {
                touchWrite(page(a));
            }
            a = (a & -PAGE) + PAGE;
        }
        return null;
    }

    byte getByte(long va) {
        Page p = page(va);
        return p.data == null ? 0 : p.data[(int) (va & (PAGE - 1))];
    }

    void putByte(long va, byte b) {
        Page p = page(va);
        touchWrite(p);
        p.data[(int) (va & (PAGE - 1))] = b;
    }

    long getLong(long va, int width) {
        long v = 0;
        for (int i = 0; i < width; i++) {
            v |= (getByte(va + i) & 0xffL) << (8 * i);
        }
        return v;
    }

    void putLong(long va, int width, long value) {
        for (int i = 0; i < width; i++) {
            putByte(va + i, (byte) (value >>> (8 * i)));
        }
    }

    /** Whether every page of {@code [start, end)} is mapped. */
    boolean covered(long start, long end) {
        for (long a = start; a < end; a += PAGE) {
            if (!pages.containsKey(a >>> 12)) {
                return false;
            }
        }
        return true;
    }

    /** Whether no page of {@code [start, end)} is mapped. */
    boolean free(long start, long end) {
        Map.Entry<Long, Page> e = pages.ceilingEntry(start >>> 12);
        return e == null || e.getKey() >= (end >>> 12);
    }

    void unmap(long start, long end) {
        pages.subMap(start >>> 12, end >>> 12).clear();
    }

    /** Maps fresh pages over {@code [start, end)}, replacing what was there. */
    void map(long start, long end, int prot, int flags) {
        unmap(start, end);
        for (long a = start; a < end; a += PAGE) {
            pages.put(a >>> 12, new Page(prot, flags));
        }
    }

    /** The VMAs of the pages in {@code [start, end)}, as {@code mappings()} prints them. */
    List<String> vmas(long start, long end) {
        return vmas(pages.subMap(start >>> 12, end >>> 12));
    }

    /** Maximal runs of consecutive pages with equal protection and flags, as VMA lines. */
    static List<String> vmas(Map<Long, Page> sorted) {
        List<String> out = new ArrayList<>();
        long runStart = -1;
        long runEnd = -1;
        Page run = null;
        for (Map.Entry<Long, Page> e : sorted.entrySet()) {
            long pn = e.getKey();
            Page p = e.getValue();
            if (run != null && pn == runEnd && p.prot == run.prot && p.flags == run.flags) {
                runEnd = pn + 1;
                continue;
            }
            if (run != null) {
                out.add(line(runStart << 12, runEnd << 12, run.prot, run.flags));
            }
            run = p;
            runStart = pn;
            runEnd = pn + 1;
        }
        if (run != null) {
            out.add(line(runStart << 12, runEnd << 12, run.prot, run.flags));
        }
        return out;
    }

    /** One line of {@code mappings()}. */
    static String line(long start, long end, int prot, int flags) {
        return String.format("%016x-%016x %s%s%s", start, end, Prot.toString(prot),
                (flags & VM_HUGEPAGE) != 0 ? " hugepage" : (flags & VM_NOHUGEPAGE) != 0 ? " nohugepage" : "",
                (flags & VM_HUGETLB) != 0 ? " hugetlb" : "");
    }

    /** Whether the page holding {@code va} is mapped hugetlb. */
    boolean hugetlb(long va) {
        Page p = page(va);
        return p != null && (p.flags & VM_HUGETLB) != 0;
    }

    /** Whether {@code boundary} cuts a 2 MiB page of a hugetlb mapping (EINVAL for munmap, mprotect, madvise). */
    boolean cutsHugetlb(long boundary) {
        return (boundary & (HUGE - 1)) != 0 && (hugetlb(boundary) || hugetlb(boundary - PAGE));
    }

    /**
     * Where a 2 MiB page may appear without the model seeing it, every page without a frame of
     * its own becomes maybe-resident (zeros either way; the next walk or pin settles it): in each
     * 2 MiB range overlapping {@code [start, end)} that one VMA maps whole and that is hugetlb,
     * or advised HUGEPAGE, or (with policy ALWAYS, or for a {@code collapse}) not advised
     * NOHUGEPAGE. A hugetlb access, a THP write fault and a collapse each make all 512
     * pages resident at once.
     */
    void markHugeMaybe(long start, long end, boolean always) {
        for (long h = start & -HUGE; h < end; h += HUGE) {
            Page first = page(h);
            if (first == null) {
                continue;
            }
            boolean eligible = (first.flags & VM_HUGETLB) != 0 || (first.flags & VM_HUGEPAGE) != 0
                    || (always && (first.flags & VM_NOHUGEPAGE) == 0);
            for (long a = h; eligible && a < h + HUGE; a += PAGE) {
                Page p = page(a);
                eligible = p != null && p.prot == first.prot && p.flags == first.flags;
            }
            if (!eligible) {
                continue;
            }
            for (long a = h; a < h + HUGE; a += PAGE) {
                Page p = page(a);
                if (!p.resident()) {
                    p.maybe = true;
                }
            }
        }
    }

    /** {@code mappings()} lines clipped to {@code [start, end)}; a VMA may reach past a zone edge. */
    static List<String> clip(List<String> lines, long start, long end) {
        List<String> out = new ArrayList<>();
        for (String l : lines) {
            long s = Long.parseUnsignedLong(l.substring(0, 16), 16);
            long e = Long.parseUnsignedLong(l.substring(17, 33), 16);
            if (e <= start || s >= end) {
                continue;
            }
            out.add(String.format("%016x-%016x", Math.max(s, start), Math.min(e, end)) + l.substring(33));
        }
        return out;
    }
}
