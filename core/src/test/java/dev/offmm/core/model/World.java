package dev.offmm.core.model;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Prot;
import dev.offmm.core.VmConfig;
import dev.offmm.core.VmStats;
import dev.offmm.core.walk.MmWalk;
import dev.offmm.core.walk.MmWalkOps;
import dev.offmm.offheap.PhysicalMemory;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The shared state of one model run: the physical memory, the address space, the shared window,
 * the ranges handed out by top-down mmaps (which must never overlap), and the global checks run
 * when every thread is quiescent.
 */
final class World implements AutoCloseable {
    /** Bits of a leaf entry, as documented by the page-table entry format (Pte): present, writable. */
    private static final long PTE_PRESENT = 1;
    private static final long PTE_WRITE = 1 << 1;
    /** Software bits: maps the zero page; PROT_NONE leaf keeping its frame. */
    private static final long PTE_ZERO = 1 << 9;
    private static final long PTE_PROTNONE = 1 << 10;
    /** A huge (2 MiB) leaf at PMD level, and the software bit of a hugetlb one (no deposited table). */
    private static final long PTE_HUGE = 1 << 7;
    private static final long PTE_HUGETLB = 1 << 11;

    final VmConfig config;
    final int threads;
    final PhysicalMemory memory;
    final long initialFree;
    final AddressSpace as;
    /** The shared window's protection; written by thread 0 only, after its mprotect returned. */
    volatile int sharedProt = Prot.READ;
    /** Ranges returned by top-down mmaps and not yet unmapped: start to end. */
    private final TreeMap<Long, Long> claims = new TreeMap<>();

    World(VmConfig config, int threads, long memoryBytes) {
        this.config = config;
        this.threads = threads;
        this.memory = PhysicalMemory.create(memoryBytes);
        this.initialFree = memory.freeFrameCount();
        this.as = AddressSpace.create(memory, config);
        as.mmap(Layout.SHARED_START, Layout.SHARED_END - Layout.SHARED_START, Prot.READ | Prot.WRITE, MapFlags.FIXED);
        byte[] pattern = new byte[(int) (Layout.SHARED_END - Layout.SHARED_START)];
        for (int i = 0; i < pattern.length; i++) {
            pattern[i] = Layout.sharedByte(Layout.SHARED_START + i);
        }
        as.write(Layout.SHARED_START, pattern, 0, pattern.length);
        as.mprotect(Layout.SHARED_START, pattern.length, Prot.READ);
    }

    /**
     * Records that a top-down mmap returned {@code [start, end)}; fails if it overlaps a range
     * another thread still holds (two mmaps handed out the same addresses).
     */
    synchronized void claim(long start, long end) {
        Map.Entry<Long, Long> below = claims.floorEntry(end - 1);
        if (below != null && below.getValue() > start) {
            throw new ModelMismatch("mmap returned [0x" + Long.toHexString(start) + ", 0x" + Long.toHexString(end)
                    + ") overlapping [0x" + Long.toHexString(below.getKey()) + ", 0x" + Long.toHexString(below.getValue())
                    + ") returned to another caller and not unmapped");
        }
        claims.put(start, end);
    }

    /** Forgets a claimed range; called before it is unmapped, so a new mmap may return it only after. */
    synchronized void unclaim(long start) {
        claims.remove(start);
    }

    /** The model of the shared window as pages, for the global checks. */
    PageModel sharedModel() {
        PageModel m = new PageModel();
        m.map(Layout.SHARED_START, Layout.SHARED_END, sharedProt, 0);
        for (PageModel.Page p : m.pages.values()) {
            p.data = new byte[0];
        }
        return m;
    }

    /**
     * The global checks, with every thread quiescent: mappings() and the VMA count equal the
     * union of the models; every leaf entry agrees with its page's model (a frame for a resident
     * page, none or the zero page otherwise, PROT_NONE and write bits from the protection); every
     * page table covers part of some mapping and the table counters match the tables found; RSS
     * equals the resident pages; every readable page holds the model's bytes. Settles maybe-resident pages.
     */
    void checkQuiescent(List<PageModel> models) {
        TreeMap<Long, PageModel.Page> all = new TreeMap<>();
        for (PageModel m : models) {
            all.putAll(m.pages);
        }
        all.putAll(sharedModel().pages);
        List<String> expected = PageModel.vmas(all);
        List<String> actual = as.mappings();
        if (!expected.equals(actual)) {
            throw new ModelMismatch("mappings() differ from the model\n  expected " + expected + "\n  actual   " + actual);
        }
        VmStats stats = as.stats();
        if (stats.vmaCount() != expected.size()) {
            throw new ModelMismatch("vmaCount " + stats.vmaCount() + " != " + expected.size());
        }
        long[] counts = walkAndCheck(all);
        long rssYes = 0;
        for (PageModel.Page p : all.values()) {
            rssYes += p.resident() ? 1 : 0;
        }
        if (stats.rssPages() != rssYes) {
            throw new ModelMismatch("rssPages " + stats.rssPages() + " != " + rssYes + " resident pages in the model");
        }
        if (stats.pteTableBytes() != counts[0] * Layout.PAGE || stats.pmdTableBytes() != counts[1] * Layout.PAGE
                || stats.pudTableBytes() != counts[2] * Layout.PAGE) {
            throw new ModelMismatch("table bytes " + stats.pteTableBytes() + "/" + stats.pmdTableBytes() + "/"
                    + stats.pudTableBytes() + " but the walk found " + counts[0] + "/" + counts[1] + "/" + counts[2] + " tables");
        }
        checkContents(all);
    }

    /** Walks every table; returns the number of PTE, PMD and PUD tables found. */
    private long[] walkAndCheck(TreeMap<Long, PageModel.Page> all) {
        long[] counts = new long[3];
        List<String> bad = new ArrayList<>();
        as.walkPageRange(0, AddressSpace.USER_END, new MmWalkOps() {
            @Override
            public int pgdEntry(long entry, long addr, long next, MmWalk walk) {
                counts[2]++;
                tableCoversMapping(addr, next, "PUD");
                return 0;
            }

            @Override
            public int pudEntry(long entry, long addr, long next, MmWalk walk) {
                counts[1]++;
                tableCoversMapping(addr, next, "PMD");
                return 0;
            }

            @Override
            public int pmdEntry(long entry, long addr, long next, MmWalk walk) {
                if ((entry & PTE_HUGE) != 0) {
                    // A THP leaf has a PTE table deposited for its split; a hugetlb one has none.
                    counts[0] += (entry & PTE_HUGETLB) != 0 ? 0 : 1;
                    for (long a = addr; a < next; a += Layout.PAGE) {
                        leaf(entry, a);
                    }
                    return 0;
                }
                counts[0]++;
                tableCoversMapping(addr, next, "PTE");
                return 0;
            }

            private void tableCoversMapping(long addr, long next, String level) {
                Map.Entry<Long, PageModel.Page> e = all.ceilingEntry(addr >>> 12);
                if (e == null || e.getKey() >= next >>> 12) {
                    bad.add(level + " table for [0x" + Long.toHexString(addr) + ", 0x" + Long.toHexString(next)
                            + ") maps no VMA (not freed by munmap)");
                }
            }

            @Override
            public int pteEntry(long entry, long addr, long next, MmWalk walk) {
                leaf(entry, addr);
                return 0;
            }

            /** The leaf {@code entry} maps the page at {@code addr} (a PTE, or one page of a huge leaf). */
            private void leaf(long entry, long addr) {
                PageModel.Page p = all.get(addr >>> 12);
                String at = " at 0x" + Long.toHexString(addr) + " (entry 0x" + Long.toHexString(entry) + ")";
                if (p == null) {
                    bad.add("leaf entry in an unmapped page" + at);
                    return;
                }
                boolean zero = (entry & PTE_ZERO) != 0;
                boolean protNone = (entry & PTE_PROTNONE) != 0;
                if (p.maybe && !p.resident()) {
                    p.maybe = false;
                    if (!zero) {
                        p.data = new byte[(int) Layout.PAGE];
                    }
                }
                if (p.resident() == zero) {
                    bad.add((p.resident() ? "resident page maps the zero page" : "page never written has a frame") + at);
                }
                if (protNone != (p.prot == Prot.NONE) || ((entry & PTE_PRESENT) != 0) == protNone) {
                    bad.add("PROT_NONE bit disagrees with prot " + Prot.toString(p.prot) + at);
                }
                if ((entry & PTE_WRITE) != 0 && !Prot.writable(p.prot)) {
                    bad.add("writable entry in a page with prot " + Prot.toString(p.prot) + at);
                }
            }
        });
        for (PageModel.Page p : all.values()) {
            if (p.maybe) {
                // No leaf at all: nothing was populated there.
                p.maybe = false;
            }
        }
        if (!bad.isEmpty()) {
            throw new ModelMismatch("page tables disagree with the model: " + bad.subList(0, Math.min(8, bad.size()))
                    + (bad.size() > 8 ? " and " + (bad.size() - 8) + " more" : ""));
        }
        return counts;
    }

    /** Reads every readable page (casual accessors) and compares it with the model. */
    private void checkContents(TreeMap<Long, PageModel.Page> all) {
        byte[] buf = new byte[(int) Layout.PAGE];
        for (Map.Entry<Long, PageModel.Page> e : all.entrySet()) {
            long va = e.getKey() << 12;
            PageModel.Page p = e.getValue();
            // A hugetlb page without a frame reads as zeros, and reading it would allocate 2 MiB,
            // which fragmentation may refuse: there is nothing to compare.
            if (!Prot.readable(p.prot) || ((p.flags & PageModel.VM_HUGETLB) != 0 && !p.resident())) {
                continue;
            }
            as.read(va, buf, 0, buf.length);
            for (int i = 0; i < buf.length; i++) {
                byte want = va >= Layout.SHARED_START && va < Layout.SHARED_END ? Layout.sharedByte(va + i)
                        : p.data == null ? 0 : p.data[i];
                if (buf[i] != want) {
                    throw new ModelMismatch("byte at 0x" + Long.toHexString(va + i) + " is " + buf[i] + ", model says " + want);
                }
            }
        }
    }

    /**
     * Closes the address space (check_mm must pass) and checks that every frame and every debug
     * lock came back to the physical memory, then closes it.
     */
    @Override
    public void close() {
        try {
            as.close();
            memory.zone().frames().drainCurrentThread();
            memory.zone().frames().reapDeadCaches();
            memory.zone().lockSlab().shrink();
            long free = memory.freeFrameCount();
            if (free != initialFree) {
                throw new ModelMismatch("frames leaked: " + (initialFree - free) + " of " + initialFree + " not returned");
            }
            if (memory.zone().lockSlab().liveLocks() != 0) {
                throw new ModelMismatch("debug locks leaked: " + memory.zone().lockSlab().liveLocks());
            }
        } finally {
            memory.close();
        }
    }
}
