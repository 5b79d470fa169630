package dev.offmm.core.model;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.Advice;
import dev.offmm.core.FaultException;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Mmu;
import dev.offmm.core.Prot;
import dev.offmm.core.Thp;
import dev.offmm.core.VmException;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Runs operations of one thread against offmm and the reference model, and compares every
 * outcome: the value read, the exception kind and fault address, the placement of an mmap.
 * Outcomes are compared as strings ({@code ok}, {@code EINVAL}, {@code ENOMEM}, {@code EEXIST},
 * {@code EPERM}, {@code MAPERR@0x...}, {@code ACCERR@0x...}, {@code OOM@0x...}), so a mismatch
 * prints both sides. Memory accesses are in {@link AccessRunner}.
 */
final class OpRunner {
    static final long PAGE = Layout.PAGE;

    final World world;
    final int thread;
    final AddressSpace as;
    final Mmu mmu;
    final PageModel model = new PageModel();
    final List<long[]> zones;
    /** Fault injection is armed: any fault may fail with OOM, a POPULATE may stop anywhere. */
    final boolean oomAllowed;
    final AccessRunner access;
    /** Outcomes seen, by op kind and {@link #OUTCOMES} index: evidence that a run exercised the error paths. */
    final long[][] outcomes = new long[Op.Kind.values().length][OUTCOMES.length];
    static final String[] OUTCOMES = {"ok", "EINVAL", "ENOMEM", "EEXIST", "EPERM", "MAPERR", "ACCERR", "OOM"};
    private int lastOutcome;

    OpRunner(World world, int thread, Mmu mmu, boolean oomAllowed) {
        this.world = world;
        this.thread = thread;
        this.as = world.as;
        this.mmu = mmu;
        this.zones = Layout.zones(thread);
        this.oomAllowed = oomAllowed;
        this.access = new AccessRunner(this);
    }

    /** Runs {@code op} on both sides; throws {@link ModelMismatch} if they disagree. */
    void apply(Op op) {
        lastOutcome = 0;
        markHuge(op);
        dispatch(op);
        markHuge(op);
        outcomes[op.kind().ordinal()][lastOutcome]++;
    }

    /**
     * Around an operation in the huge zone: pages a 2 MiB page may have made resident without
     * the model seeing it become maybe-resident ({@link PageModel#markHugeMaybe}).
     */
    private void markHuge(Op op) {
        switch (op.kind()) {
            case UNPIN, PIN_WRITE, PIN_CHECK, IDLE, CHECK_MAPPINGS, SHARED_READ, SHARED_WRITE, SHARED_PIN, SHARED_MPROTECT,
                 BAD_ARGS, ROGUE_WRITE -> {
                return;
            }
            default -> {
            }
        }
        long[] hz = Layout.hugeZone(thread);
        long end = op.addr() + Math.max(op.len(), 16);
        if (op.addr() < hz[1] && end > hz[0]) {
            boolean collapse = op.kind() == Op.Kind.MADVISE && op.arg() == Advice.COLLAPSE;
            model.markHugeMaybe(Math.max(op.addr(), hz[0]), Math.min(end, hz[1]),
                    collapse || world.config.thp() == Thp.ALWAYS);
        }
    }

    private void dispatch(Op op) {
        switch (op.kind()) {
            case MMAP -> mmap(op);
            case MMAP_ANYWHERE -> mmapAnywhere(op);
            case MUNMAP -> munmap(op);
            case MPROTECT -> mprotect(op);
            case MADVISE -> madvise(op);
            case CHECK_MAPPINGS -> checkMappings();
            case SHARED_MPROTECT -> sharedMprotect(op);
            case BAD_ARGS -> badArgs(op);
            case IDLE -> mmu.idle();
            default -> access.apply(op);
        }
    }

    /** The outcome of a call as a comparable string. Errors other than offmm's are rethrown. */
    static String outcome(Throwable t) {
        if (t == null) {
            return "ok";
        }
        if (t instanceof FaultException f) {
            return f.kind() + "@0x" + Long.toHexString(f.address());
        }
        if (t instanceof VmException v) {
            return v.code().name();
        }
        if (t instanceof IllegalArgumentException) {
            return "EINVAL";
        }
        if (t instanceof RuntimeException r) {
            throw r;
        }
        throw (Error) t;
    }

    static String outcome(PageModel.Failure f) {
        return f == null ? "ok" : f.kind() + "@0x" + Long.toHexString(f.address());
    }

    void expect(Op op, String want, Throwable got) {
        String actual = outcome(got);
        if (!want.equals(actual)) {
            ModelMismatch m = new ModelMismatch(op + ": expected " + want + ", got " + actual);
            if (got != null) {
                m.initCause(got);
            }
            throw m;
        }
        for (int i = 1; i < OUTCOMES.length; i++) {
            if (actual.startsWith(OUTCOMES[i])) {
                lastOutcome = i;
            }
        }
    }

    /** The address of an injected OOM, or -1. Only fault injection may produce one. */
    long oomAt(Throwable t) {
        // A hugetlb fault may also find no free 2 MiB block when 4 KiB pages fragment the memory.
        if (t instanceof FaultException f && f.kind() == FaultException.Kind.OOM && (oomAllowed || model.hugetlb(f.address()))) {
            return f.address();
        }
        return -1;
    }

    interface Call {
        long run();
    }

    /** The result of a call: its value, or what it threw. */
    static final class Result {
        long value;
        Throwable error;
    }

    static Result call(Call c) {
        Result r = new Result();
        try {
            r.value = c.run();
        } catch (RuntimeException e) {
            r.error = e;
        }
        return r;
    }

    static long align(long len) {
        return (len + PAGE - 1) & -PAGE;
    }

    // ---- mmap

    private void mmap(Op op) {
        int prot = op.arg() & 0xff;
        int flags = op.arg() >>> 8;
        long len = align(op.len());
        Result r = call(() -> as.mmap(op.addr(), op.len(), prot, flags));
        boolean noReplace = (flags & MapFlags.FIXED_NOREPLACE) != 0;
        boolean fixed = noReplace || (flags & MapFlags.FIXED) != 0;
        boolean hugetlb = (flags & MapFlags.HUGETLB) != 0;
        long start = fixed ? op.addr() : op.addr() & (hugetlb ? -PageModel.HUGE : -PAGE);
        if (hugetlb && ((op.len() & (PageModel.HUGE - 1)) != 0 || (fixed && (start & (PageModel.HUGE - 1)) != 0))) {
            expect(op, "EINVAL", r.error);
            return;
        }
        if (fixed && noReplace && !model.free(start, start + len)) {
            expect(op, "EEXIST", r.error);
            return;
        }
        if (fixed && (model.cutsHugetlb(start) || model.cutsHugetlb(start + len))) {
            expect(op, "EINVAL", r.error);
            return;
        }
        expect(op, "ok", r.error);
        if (!fixed && !model.free(start, start + len)) {
            // The hint is taken: placed top-down, outside every zone.
            checkTopDown(op, r.value, len);
            world.unclaim(r.value);
            as.munmap(r.value, len);
            return;
        }
        if (r.value != start) {
            throw new ModelMismatch(op + ": returned 0x" + Long.toHexString(r.value) + ", expected 0x" + Long.toHexString(start));
        }
        model.map(start, start + len, prot, ((flags & MapFlags.NORESERVE) != 0 ? PageModel.VM_NORESERVE : 0)
                | (hugetlb ? PageModel.VM_HUGETLB : 0));
        if ((flags & MapFlags.POPULATE) != 0 && Prot.writable(prot)) {
            for (long a = start; a < start + len; a += PAGE) {
                // A hugetlb POPULATE stops quietly where no 2 MiB block is free (fragmentation).
                if (oomAllowed || hugetlb) {
                    model.page(a).maybe = true;
                } else {
                    model.touchWrite(model.page(a));
                }
            }
        }
    }

    private void checkTopDown(Op op, long r, long len) {
        if ((r & (PAGE - 1)) != 0 || r < AddressSpace.MMAP_MIN_ADDR || r > AddressSpace.USER_END - len
                || Layout.overlapsAnyZone(r, r + len, world.threads)) {
            throw new ModelMismatch(op + ": top-down placement returned 0x" + Long.toHexString(r)
                    + " (unaligned, out of the user space, or inside a zone)");
        }
        world.claim(r, r + len);
    }

    private void mmapAnywhere(Op op) {
        int prot = op.arg();
        long len = align(op.len());
        Result r = call(() -> as.mmap(0, op.len(), prot, MapFlags.NONE));
        expect(op, "ok", r.error);
        long a = r.value;
        checkTopDown(op, a, len);
        try {
            if (Prot.writable(prot)) {
                Result w = call(() -> {
                    mmu.putLong(a, op.value());
                    as.putLong(a + len - 8, ~op.value());
                    return mmu.getLong(a + len - 8) ^ as.getLong(a);
                });
                if (w.error == null && w.value != -1) {
                    throw new ModelMismatch(op + ": read back 0x" + Long.toHexString(w.value) + " xor, expected all ones");
                }
                if (w.error != null && oomAt(w.error) < 0) {
                    expect(op, "ok", w.error);
                }
            } else if (Prot.readable(prot)) {
                Result w = call(() -> mmu.getLong(a + len / 2));
                if (w.error == null && w.value != 0) {
                    throw new ModelMismatch(op + ": fresh mapping reads 0x" + Long.toHexString(w.value));
                }
                if (w.error != null && oomAt(w.error) < 0) {
                    expect(op, "ok", w.error);
                }
            } else {
                Result w = call(() -> mmu.getLong(a));
                expect(op, "ACCERR@0x" + Long.toHexString(a), w.error);
            }
        } finally {
            world.unclaim(a);
            as.munmap(a, len);
        }
    }

    private void munmap(Op op) {
        Result r = call(() -> {
            as.munmap(op.addr(), op.len());
            return 0;
        });
        if (cutsHugetlb(op.addr(), op.addr() + align(op.len()))) {
            expect(op, "EINVAL", r.error);
            return;
        }
        expect(op, "ok", r.error);
        model.unmap(op.addr(), op.addr() + align(op.len()));
    }

    private void mprotect(Op op) {
        long end = op.addr() + align(op.len());
        Result r = call(() -> {
            as.mprotect(op.addr(), op.len(), op.arg());
            return 0;
        });
        if (end != op.addr() && !model.covered(op.addr(), end)) {
            expect(op, "ENOMEM", r.error);
            return;
        }
        if (end != op.addr() && cutsHugetlb(op.addr(), end)) {
            expect(op, "EINVAL", r.error);
            return;
        }
        expect(op, "ok", r.error);
        for (long a = op.addr(); a < end; a += PAGE) {
            model.page(a).prot = op.arg();
        }
    }

    private void madvise(Op op) {
        long end = op.addr() + align(op.len());
        Result r = call(() -> {
            as.madvise(op.addr(), op.len(), op.arg());
            return 0;
        });
        if (end != op.addr() && !model.covered(op.addr(), end)) {
            expect(op, "ENOMEM", r.error);
            return;
        }
        if (end != op.addr() && op.arg() == Advice.COLLAPSE) {
            collapse(op, end, r);
            return;
        }
        if (end != op.addr() && op.arg() != Advice.WILLNEED && cutsHugetlb(op.addr(), end)) {
            expect(op, "EINVAL", r.error);
            return;
        }
        expect(op, "ok", r.error);
        for (long a = op.addr(); a < end; a += PAGE) {
            PageModel.Page p = model.page(a);
            switch (op.arg()) {
                case Advice.DONTNEED -> {
                    p.data = null;
                    p.maybe = false;
                }
                case Advice.HUGEPAGE -> p.flags = (p.flags & ~PageModel.VM_NOHUGEPAGE) | PageModel.VM_HUGEPAGE;
                case Advice.NOHUGEPAGE -> p.flags = (p.flags & ~PageModel.VM_HUGEPAGE) | PageModel.VM_NOHUGEPAGE;
                default -> {
                    // WILLNEED: checks the range, changes nothing.
                }
            }
        }
    }

    private boolean cutsHugetlb(long start, long end) {
        return model.cutsHugetlb(start) || model.cutsHugetlb(end);
    }

    /**
     * {@code MADV_COLLAPSE} changes no byte: EINVAL over a hugetlb or NOHUGEPAGE page; else done,
     * or EAGAIN if a page in the range is pinned, or ENOMEM (no free 2 MiB block: fault injection,
     * or 4 KiB pages fragmenting the memory).
     */
    private void collapse(Op op, long end, Result r) {
        for (long a = op.addr(); a < end; a += PAGE) {
            PageModel.Page p = model.page(a);
            if ((p.flags & (PageModel.VM_HUGETLB | PageModel.VM_NOHUGEPAGE)) != 0) {
                expect(op, "EINVAL", r.error);
                return;
            }
        }
        String got = outcome(r.error);
        boolean again = got.equals("EAGAIN") && access.pinnedIn(op.addr() & -PageModel.HUGE, end + PageModel.HUGE);
        boolean oom = got.equals("ENOMEM");
        if (!again && !oom) {
            expect(op, "ok", r.error);
        }
    }

    /** mappings() clipped to each zone equals the model's VMAs there. */
    void checkMappings() {
        List<String> lines = as.mappings();
        for (long[] z : zones) {
            List<String> want = model.vmas(z[0], z[1]);
            List<String> got = PageModel.clip(lines, z[0], z[1]);
            if (!want.equals(got)) {
                throw new ModelMismatch("mappings() in zone [0x" + Long.toHexString(z[0]) + ", 0x" + Long.toHexString(z[1])
                        + "): expected " + want + ", got " + got);
            }
        }
    }

    private void sharedMprotect(Op op) {
        Result r = call(() -> {
            as.mprotect(Layout.SHARED_START, Layout.SHARED_END - Layout.SHARED_START, op.arg());
            return 0;
        });
        expect(op, "ok", r.error);
        world.sharedProt = op.arg();
    }

    /** Calls with bad arguments: each fails as Linux would and changes nothing (later checks see that). */
    private void badArgs(Op op) {
        long a = op.addr() & -PAGE;
        int rw = Prot.READ | Prot.WRITE;
        String want = "EINVAL";
        Call c = switch (op.arg()) {
            case 0 -> () -> unit(() -> as.munmap(a + 1, PAGE));
            case 1 -> () -> unit(() -> as.munmap(a, 0));
            case 2 -> () -> unit(() -> as.mprotect(a, PAGE, 4));
            case 3 -> () -> unit(() -> as.madvise(a, PAGE, 99));
            case 4 -> () -> as.mmap(a, 0, rw, MapFlags.FIXED);
            case 5 -> () -> as.mmap(a + 1, PAGE, rw, MapFlags.FIXED);
            case 6 -> () -> as.mmap(a, PAGE, 8, MapFlags.FIXED);
            case 7 -> () -> as.mmap(a, PAGE, rw, MapFlags.FIXED | 1 << 10);
            case 8 -> {
                want = "EPERM";
                yield () -> as.mmap(PAGE, PAGE, rw, MapFlags.FIXED);
            }
            case 9 -> {
                want = "ENOMEM";
                yield () -> as.mmap(AddressSpace.USER_END - PAGE, 2 * PAGE, rw, MapFlags.FIXED);
            }
            case 10 -> {
                want = "ENOMEM";
                yield () -> as.mmap(0, Long.MAX_VALUE, rw, MapFlags.NONE);
            }
            case 11 -> () -> unit(() -> as.munmap(AddressSpace.USER_END - PAGE, 2 * PAGE));
            case 12 -> () -> unit(() -> as.mprotect(a, -PAGE, Prot.READ));
            case 13 -> {
                want = "MAPERR@0x" + Long.toHexString(-8L);
                yield () -> unit(() -> as.fault(-8, false));
            }
            case 14 -> {
                want = "MAPERR@0x" + Long.toHexString(AddressSpace.USER_END);
                yield () -> mmu.getLong(AddressSpace.USER_END);
            }
            case 15 -> () -> mmu.compareAndSetLong(a + 4, 0, 1) ? 1 : 0;
            default -> {
                if (model.free(a, a + PAGE)) {
                    want = "ok";
                    yield () -> 0;
                }
                want = "EEXIST";
                yield () -> as.mmap(a, PAGE, rw, MapFlags.FIXED_NOREPLACE);
            }
        };
        expect(op, want, call(c).error);
    }

    private static long unit(Runnable r) {
        r.run();
        return 0;
    }

    /** Seeded bytes of a bulk write. */
    static byte[] bytes(long seed, long len) {
        byte[] b = new byte[(int) len];
        SplittableRandom rnd = new SplittableRandom(seed);
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) rnd.nextInt(1, 256);
        }
        return b;
    }

    /** Checks and drops every pin (end of a run). */
    void releasePins() {
        access.releasePins();
    }

    /** 0 if slot {@code s} is empty, 1 for a read pin, 2 for a write pin. */
    int pinState(int s) {
        return access.pinState(s);
    }

    static MemorySegment heap(byte[] b) {
        return MemorySegment.ofArray(b);
    }
}
