package dev.offmm.core.mm;

import dev.offmm.offheap.LockClass;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.LongAdder;

/**
 * The counters of one address space, read through {@code AddressSpace.stats()}, counted the way
 * the kernel counts RSS per task ({@code SPLIT_RSS_COUNTING}) and vm events per CPU: the fault
 * path writes only its own context's {@link Local} buffer (plain arithmetic, opaque stores, on
 * cache lines no other thread writes), and the rare paths (unmaps, releases after a grace period,
 * contended locks) add to shared {@link LongAdder}s. A total is the shared part plus every
 * registered buffer; a buffer whose context closed, or whose thread died, is folded into the
 * shared part and dropped.
 *
 * <p>Exactness: a total read while no thread is inside a call that counts is exact (the buffers'
 * opaque stores are visible once their writers have stopped, e.g. after a join); while threads
 * run it is a racy snapshot, as before.
 */
public final class VmCounters {
    /** Resident data pages (not the zero page). */
    public static final int RSS = 0;
    /** PTE tables allocated and not yet freed. */
    public static final int PTE_TABLES = 1;
    /** PMD tables allocated and not yet freed. */
    public static final int PMD_TABLES = 2;
    /** PUD tables allocated and not yet freed. */
    public static final int PUD_TABLES = 3;
    /** Every frame this address space holds: data pages, tables of every level, the PGD. */
    public static final int FRAMES_HELD = 4;
    /** Data pages allocated by faults. */
    public static final int PAGES_ALLOCATED = 5;
    /** Data pages released after their grace period. */
    public static final int PAGES_FREED = 6;
    /** Page tables allocated (every level but the PGD). */
    public static final int TABLES_ALLOCATED = 7;
    /** Page tables destroyed and freed. */
    public static final int TABLES_FREED = 8;
    /** Batches released after their grace period. */
    public static final int GRACE_PERIODS = 9;
    /** Read faults that mapped the zero page. */
    public static final int FAULT_ZERO = 10;
    /** Write faults that allocated a fresh page. */
    public static final int FAULT_ANON = 11;
    /** Write faults that copied (from the zero page). */
    public static final int FAULT_COW = 12;
    /** Write faults that made an exclusive page writable again. */
    public static final int FAULT_REUSE = 13;
    /** Faults that found the entry already good (another thread won). */
    public static final int FAULT_SPURIOUS = 14;
    /** Faults with no mapping. */
    public static final int FAULT_MAPERR = 15;
    /** Faults with the wrong protection. */
    public static final int FAULT_ACCERR = 16;
    /** Faults that ran out of memory. */
    public static final int FAULT_OOM = 17;
    /** Faults that fell back from the per-VMA lock to mmap_lock. */
    public static final int FAULT_MMAP_LOCK_FALLBACK = 18;
    /** TLB generation bumps (shootdowns). */
    public static final int TLB_FLUSHES = 19;
    /** Populate races lost: a table built and destroyed because another thread installed one. */
    public static final int TABLE_RACES_LOST = 20;
    /** Huge (2 MiB) entries mapped now, THP and hugetlb. */
    public static final int HUGE_PAGES = 21;
    /** Write faults that mapped a transparent huge page. */
    public static final int FAULT_THP = 22;
    /** Faults that mapped a hugetlb page. */
    public static final int FAULT_HUGETLB = 23;
    /** THP-eligible faults that fell back to 4 KiB pages (no order-9 frame, or no table to deposit). */
    public static final int THP_FALLBACK = 24;
    /** Huge entries split into PTE tables. */
    public static final int THP_SPLIT = 25;
    /** PTE tables collapsed into huge entries. */
    public static final int THP_COLLAPSE = 26;
    /** PTE tables this space maps through a shared (read-only) PMD entry, now. */
    public static final int SHARED_TABLES = 27;
    /** Write faults that copied a page shared copy-on-write after a fork. */
    public static final int FAULT_COW_COPY = 28;
    /** Shared tables this space was the last user of, and kept without copying. */
    public static final int UNSHARE_KEPT = 29;
    /** Shared tables this space copied to change them. */
    public static final int UNSHARE_COPIED = 30;
    /** Shared tables this space let go of (munmap, close) while others still shared them. */
    public static final int UNSHARE_DROPPED = 31;
    /** Forks of this space. */
    public static final int FORKS = 32;
    /** Pages copied for a child at fork because they were pinned. */
    public static final int FORK_PINNED_COPIES = 33;
    /** Copy-on-write faults whose page allocation failed and succeeded once the context gave back the pages it replaced. */
    public static final int COW_RECLAIM_RETRIES = 34;
    /** Lock acquisitions of {@link LockClass} {@code k}: {@code LOCK_ACQUISITIONS + k.ordinal()} (debug locks only). */
    public static final int LOCK_ACQUISITIONS = 35;
    /** Contended lock acquisitions of {@link LockClass} {@code k}: {@code LOCK_CONTENTIONS + k.ordinal()}. */
    public static final int LOCK_CONTENTIONS = LOCK_ACQUISITIONS + LockClass.values().length;
    /** How many counters. */
    public static final int COUNT = LOCK_CONTENTIONS + LockClass.values().length;

    private static final VarHandle SLOT = MethodHandles.arrayElementVarHandle(long[].class);
    /** Longs of padding before and after a buffer's counts: two cache lines each side. */
    private static final int PAD = 16;

    private final LongAdder[] shared = new LongAdder[COUNT];
    private final CopyOnWriteArrayList<Local> locals = new CopyOnWriteArrayList<>();
    /** Buffers registered since the last reap of dead owners'; reap again when they double. */
    private int sinceReap;

    /** Zeroed counters with no buffer. */
    public VmCounters() {
        for (int i = 0; i < COUNT; i++) {
            shared[i] = new LongAdder();
        }
    }

    /**
     * One context's buffer, written by its owner thread only: plain reads of its own counts and
     * opaque stores, which totals read with opaque loads. No other thread writes its cache lines.
     */
    public final class Local {
        private final long[] counts = new long[PAD + COUNT + PAD];
        private final Thread owner;
        private boolean folded;

        private Local(Thread owner) {
            this.owner = owner;
        }

        /** Adds {@code delta} to counter {@code c}. Owner thread only. */
        public void add(int c, long delta) {
            int i = PAD + c;
            SLOT.setOpaque(counts, i, counts[i] + delta);
        }

        /** Adds 1 to counter {@code c}. Owner thread only. */
        public void increment(int c) {
            add(c, 1);
        }

        long readOpaque(int c) {
            return (long) SLOT.getOpaque(counts, PAD + c);
        }

        /** Moves this buffer's counts into the shared totals and drops it; idempotent. */
        public void fold() {
            synchronized (VmCounters.this) {
                if (folded) {
                    return;
                }
                folded = true;
                for (int c = 0; c < COUNT; c++) {
                    long v = readOpaque(c);
                    if (v != 0) {
                        shared[c].add(v);
                    }
                }
                locals.remove(this);
            }
        }
    }

    /**
     * A new buffer for a context owned by the calling thread, registered so that totals include
     * it. Buffers of threads that died are folded as they accumulate.
     */
    public Local local() {
        Local l = new Local(Thread.currentThread());
        synchronized (this) {
            locals.add(l);
            if (++sinceReap > Math.max(16, locals.size())) {
                sinceReap = 0;
                for (Local o : locals) {
                    // isAlive() == false orders the dead owner's last stores before these reads.
                    if (!o.owner.isAlive()) {
                        o.fold();
                    }
                }
            }
        }
        return l;
    }

    /** Adds {@code delta} to counter {@code c} in the shared part: for the paths that have no buffer. */
    public void add(int c, long delta) {
        shared[c].add(delta);
    }

    /** Adds 1 to counter {@code c} in the shared part. */
    public void increment(int c) {
        shared[c].increment();
    }

    /**
     * The total of counter {@code c}: the shared part plus every buffer (racy while threads
     * count). Consistent with folding: a buffer being folded is counted once.
     */
    public synchronized long sum(int c) {
        long s = shared[c].sum();
        for (Local l : locals) {
            s += l.readOpaque(c);
        }
        return s;
    }

    /** Every total at once, as {@link #sum} would give them. */
    public synchronized long[] totals() {
        long[] t = new long[COUNT];
        for (int c = 0; c < COUNT; c++) {
            t[c] = shared[c].sum();
        }
        for (Local l : locals) {
            for (int c = 0; c < COUNT; c++) {
                t[c] += l.readOpaque(c);
            }
        }
        return t;
    }

    /** Buffers registered now (racy). */
    public int buffers() {
        return locals.size();
    }
}
