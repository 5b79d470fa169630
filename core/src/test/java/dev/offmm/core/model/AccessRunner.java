package dev.offmm.core.model;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.FaultException;
import dev.offmm.core.Mmu;
import dev.offmm.core.PinnedPage;
import dev.offmm.core.Prot;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The memory accesses of {@link OpRunner}: through the thread's {@link Mmu}, through the casual
 * {@link AddressSpace} accessors, and through pinned pages. The model of each follows the
 * access's documented order of translation: the Mmu translates every page of an access before
 * it stores anything, the casual accessors go page by page (a casual write crossing into a page
 * that faults has already written the first page).
 */
final class AccessRunner {
    private static final long PAGE = Layout.PAGE;
    private static final int SLOTS = 4;

    /** A pinned page and the model of its frame's bytes. */
    private static final class Pin {
        PinnedPage page;
        /** The frame's bytes; {@code null} for the zero page. */
        byte[] shadow;
        boolean write;
    }

    private final OpRunner r;
    private final PageModel model;
    private final AddressSpace as;
    private final Mmu mmu;
    private final Pin[] pins = new Pin[SLOTS];

    AccessRunner(OpRunner r) {
        this.r = r;
        this.model = r.model;
        this.as = r.as;
        this.mmu = r.mmu;
    }

    void apply(Op op) {
        switch (op.kind()) {
            case FAULT -> fault(op);
            case MMU_GET, AS_GET -> get(op);
            case MMU_PUT, AS_PUT -> put(op);
            case MMU_ATOMIC -> atomic(op);
            case MMU_READ, AS_READ -> read(op);
            case MMU_WRITE, AS_WRITE -> write(op);
            case PIN -> pin(op);
            case UNPIN -> unpin(op.arg());
            case PIN_WRITE -> pinWrite(op);
            case PIN_CHECK -> pinCheck(op.arg(), op.toString());
            case SHARED_READ -> sharedRead(op);
            case SHARED_WRITE -> sharedWrite(op);
            case SHARED_PIN -> sharedPin(op);
            case ROGUE_WRITE -> OpRunner.call(() -> {
                as.putLong(op.addr(), op.value());
                return 0;
            });
            default -> throw new IllegalArgumentException("unknown op " + op);
        }
    }

    private void fault(Op op) {
        boolean write = op.arg() != 0;
        OpRunner.Result res = OpRunner.call(() -> {
            as.fault(op.addr(), write);
            return 0;
        });
        r.expect(op, OpRunner.outcome(model.translateInOrder(op.addr(), 1, write, r.oomAt(res.error))), res.error);
    }

    private void get(Op op) {
        long va = op.addr();
        int w = op.arg();
        boolean viaMmu = op.kind() == Op.Kind.MMU_GET;
        OpRunner.Result res = OpRunner.call(() -> switch (w) {
            case 1 -> viaMmu ? mmu.getByte(va) : as.getByte(va);
            case 4 -> mmu.getInt(va);
            default -> viaMmu ? mmu.getLong(va) : as.getLong(va);
        });
        PageModel.Failure f = model.translateInOrder(va, w, false, r.oomAt(res.error));
        r.expect(op, OpRunner.outcome(f), res.error);
        if (f == null) {
            long mask = w == 8 ? -1L : (1L << (8 * w)) - 1;
            long want = model.getLong(va, w);
            if ((res.value & mask) != want) {
                throw new ModelMismatch(op + ": read 0x" + Long.toHexString(res.value & mask) + ", model says 0x"
                        + Long.toHexString(want));
            }
        }
    }

    private void put(Op op) {
        long va = op.addr();
        int w = op.arg();
        long v = op.value();
        boolean viaMmu = op.kind() == Op.Kind.MMU_PUT;
        OpRunner.Result res = OpRunner.call(() -> {
            switch (w) {
                case 1 -> {
                    if (viaMmu) {
                        mmu.putByte(va, (byte) v);
                    } else {
                        as.putByte(va, (byte) v);
                    }
                }
                case 4 -> mmu.putInt(va, (int) v);
                default -> {
                    if (viaMmu) {
                        mmu.putLong(va, v);
                    } else {
                        as.putLong(va, v);
                    }
                }
            }
            return 0;
        });
        // A store happens whole or not at all, through either path (a page-crossing store
        // translates both pages before it writes a byte).
        PageModel.Failure f = model.translateInOrder(va, w, true, r.oomAt(res.error));
        r.expect(op, OpRunner.outcome(f), res.error);
        if (f == null) {
            model.putLong(va, w, v);
        }
    }

    /** A bulk write in the model: page by page, each page written before the next is faulted. */
    private PageModel.Failure writeUpToFault(long va, byte[] b, long oomAt) {
        long a = va;
        int off = 0;
        while (off < b.length) {
            int chunk = (int) Math.min(b.length - off, PAGE - (a & (PAGE - 1)));
            PageModel.Failure f = model.translateInOrder(a, 1, true, oomAt);
            if (f != null) {
                return f;
            }
            for (int i = 0; i < chunk; i++) {
                model.putByte(a + i, b[off + i]);
            }
            a += chunk;
            off += chunk;
        }
        return null;
    }

    private void atomic(Op op) {
        long va = op.addr();
        OpRunner.Result res = OpRunner.call(() -> switch (op.arg()) {
            case 0 -> mmu.getLongAcquire(va);
            case 1 -> {
                mmu.putLongRelease(va, op.value());
                yield 0;
            }
            case 2 -> mmu.compareAndSetLong(va, op.len(), op.value()) ? 1 : 0;
            default -> mmu.getAndAddLong(va, op.value());
        });
        if ((va & 7) != 0) {
            r.expect(op, "EINVAL", res.error);
            return;
        }
        PageModel.Failure f = model.translateInOrder(va, 8, op.arg() != 0, r.oomAt(res.error));
        r.expect(op, OpRunner.outcome(f), res.error);
        if (f != null) {
            return;
        }
        long cur = model.getLong(va, 8);
        long want = switch (op.arg()) {
            case 0, 3 -> cur;
            case 1 -> 0;
            default -> cur == op.len() ? 1 : 0;
        };
        if (res.value != want) {
            throw new ModelMismatch(op + ": returned 0x" + Long.toHexString(res.value) + ", model says 0x"
                    + Long.toHexString(want));
        }
        switch (op.arg()) {
            case 1 -> model.putLong(va, 8, op.value());
            case 2 -> {
                if (cur == op.len()) {
                    model.putLong(va, 8, op.value());
                }
            }
            case 3 -> model.putLong(va, 8, cur + op.value());
            default -> {
                // getAcquire changes nothing.
            }
        }
    }

    private void read(Op op) {
        long va = op.addr();
        byte[] buf = new byte[(int) op.len()];
        boolean viaMmu = op.kind() == Op.Kind.MMU_READ;
        OpRunner.Result res = OpRunner.call(() -> {
            if (viaMmu) {
                mmu.read(va, buf, 0, buf.length);
            } else {
                as.read(va, buf, 0, buf.length);
            }
            return 0;
        });
        PageModel.Failure f = model.translateInOrder(va, buf.length, false, r.oomAt(res.error));
        r.expect(op, OpRunner.outcome(f), res.error);
        checkBytesCopied(op, va, f, res.error);
        long copied = f == null ? buf.length : res.error instanceof FaultException e ? e.bytesCopied() : 0;
        if (copied > 0) {
            for (int i = 0; i < copied; i++) {
                if (buf[i] != model.getByte(va + i)) {
                    throw new ModelMismatch(op + ": byte at 0x" + Long.toHexString(va + i) + " is " + buf[i]
                            + ", model says " + model.getByte(va + i));
                }
            }
        }
    }

    private void write(Op op) {
        long va = op.addr();
        byte[] src = OpRunner.bytes(op.value(), op.len());
        boolean viaMmu = op.kind() == Op.Kind.MMU_WRITE;
        OpRunner.Result res = OpRunner.call(() -> {
            if (viaMmu) {
                mmu.write(va, src, 0, src.length);
            } else {
                as.write(va, src, 0, src.length);
            }
            return 0;
        });
        // Through either path, a copy that faults has written every byte before the first page
        // it could not write, and says how many.
        PageModel.Failure f = writeUpToFault(va, src, r.oomAt(res.error));
        r.expect(op, OpRunner.outcome(f), res.error);
        checkBytesCopied(op, va, f, res.error);
    }

    /** A failed copy reports the bytes before the faulting address as copied. */
    private static void checkBytesCopied(Op op, long va, PageModel.Failure f, Throwable error) {
        if (f != null && error instanceof FaultException e && e.bytesCopied() != Math.max(0, e.address() - va)) {
            throw new ModelMismatch(op + ": " + e.getMessage() + " reports " + e.bytesCopied() + " bytes copied, expected "
                    + Math.max(0, e.address() - va));
        }
    }

    // ---- pins

    /** Whether a pin holds a page in {@code [start, end)}. */
    boolean pinnedIn(long start, long end) {
        for (Pin pin : pins) {
            if (pin != null && pin.page.address() >= start && pin.page.address() < end) {
                return true;
            }
        }
        return false;
    }

    int pinState(int s) {
        return pins[s] == null ? 0 : pins[s].write ? 2 : 1;
    }

    private void pin(Op op) {
        int s = op.arg() & 0xf;
        boolean write = (op.arg() & 0x10) != 0;
        boolean viaMmu = (op.arg() & 0x20) != 0;
        if (pins[s] != null) {
            unpin(s);
        }
        long va = op.addr();
        PinnedPage[] got = new PinnedPage[1];
        OpRunner.Result res = OpRunner.call(() -> {
            got[0] = viaMmu ? mmu.pin(va, write) : as.pin(va, write);
            return 0;
        });
        PageModel.Failure f = model.translateInOrder(va, 1, write, r.oomAt(res.error));
        r.expect(op, OpRunner.outcome(f), res.error);
        if (f != null) {
            return;
        }
        Pin pin = new Pin();
        pin.page = got[0];
        pin.write = write;
        pins[s] = pin;
        PageModel.Page p = model.page(va);
        boolean readOnly = pin.page.segment().isReadOnly();
        if (p.maybe && !p.resident()) {
            p.maybe = false;
            if (!readOnly) {
                p.data = new byte[(int) PAGE];
            }
        }
        if (pin.page.address() != (va & -PAGE) || readOnly == p.resident()) {
            throw new ModelMismatch(op + ": pinned 0x" + Long.toHexString(pin.page.address()) + (readOnly ? " read-only" : "")
                    + " but the page " + (p.resident() ? "has a frame" : "was never written (expected the zero page)"));
        }
        pin.shadow = p.data;
        pinCheck(s, op.toString());
    }

    private void pinWrite(Op op) {
        Pin pin = pins[op.arg()];
        if (pin == null || !pin.write) {
            return;
        }
        int off = (int) op.addr() & 4088;
        pin.page.segment().set(ValueLayout.JAVA_LONG_UNALIGNED, off, op.value());
        OpRunner.heap(pin.shadow).set(ValueLayout.JAVA_LONG_UNALIGNED, off, op.value());
    }

    /** The pinned frame holds the model's bytes (zeros for the zero page, which must stay zeros). */
    private void pinCheck(int s, String what) {
        Pin pin = pins[s];
        if (pin == null) {
            return;
        }
        MemorySegment seg = pin.page.segment();
        long mismatch = pin.shadow == null ? seg.asSlice(0, PAGE).mismatch(MemorySegment.ofArray(new byte[(int) PAGE]))
                : seg.mismatch(MemorySegment.ofArray(pin.shadow));
        if (mismatch >= 0) {
            throw new ModelMismatch(what + ": pinned frame of 0x" + Long.toHexString(pin.page.address()) + " differs at +"
                    + mismatch + ": " + seg.get(ValueLayout.JAVA_BYTE, Math.min(mismatch, PAGE - 1)) + " ("
                    + (pin.shadow == null ? "zero page" : "frame") + ")");
        }
    }

    private void unpin(int s) {
        Pin pin = pins[s];
        if (pin == null) {
            return;
        }
        pinCheck(s, "unpin[" + s + "]");
        pins[s] = null;
        pin.page.close();
        try {
            pin.page.segment();
            throw new ModelMismatch("unpin[" + s + "]: segment() still usable after close");
        } catch (IllegalStateException expected) {
            // An unpinned page hands out no segment.
        }
    }

    void releasePins() {
        for (int s = 0; s < SLOTS; s++) {
            unpin(s);
        }
    }

    // ---- the shared read-mostly window

    private void sharedRead(Op op) {
        long va = op.addr();
        OpRunner.Result res = OpRunner.call(() -> op.arg() != 0 ? mmu.getLong(va) : as.getLong(va));
        if (r.oomAt(res.error) >= 0) {
            return;
        }
        r.expect(op, "ok", res.error);
        long want = 0;
        for (int i = 0; i < 8; i++) {
            want |= (Layout.sharedByte(va + i) & 0xffL) << (8 * i);
        }
        if (res.value != want) {
            throw new ModelMismatch(op + ": shared window reads 0x" + Long.toHexString(res.value) + ", pattern is 0x"
                    + Long.toHexString(want));
        }
    }

    private void sharedWrite(Op op) {
        long va = op.addr() & -8;
        long v = 0;
        for (int i = 0; i < 8; i++) {
            v |= (Layout.sharedByte(va + i) & 0xffL) << (8 * i);
        }
        long value = v;
        OpRunner.Result res = OpRunner.call(() -> {
            if (op.arg() != 0) {
                mmu.putLong(va, value);
            } else {
                as.putLong(va, value);
            }
            return 0;
        });
        if (r.oomAt(res.error) >= 0) {
            return;
        }
        boolean writable = Prot.writable(r.world.sharedProt);
        r.expect(op, writable ? "ok" : FaultException.Kind.ACCERR + "@0x" + Long.toHexString(va), res.error);
    }

    private void sharedPin(Op op) {
        long va = op.addr();
        OpRunner.Result res = OpRunner.call(() -> {
            try (PinnedPage p = mmu.pin(va, false)) {
                MemorySegment seg = p.segment();
                for (int i = 0; i < PAGE; i += 8) {
                    byte b = seg.get(ValueLayout.JAVA_BYTE, i);
                    if (b != Layout.sharedByte(p.address() + i) || seg.isReadOnly()) {
                        throw new ModelMismatch(op + ": pinned shared page differs at +" + i);
                    }
                }
            }
            return 0;
        });
        if (r.oomAt(res.error) >= 0) {
            return;
        }
        r.expect(op, "ok", res.error);
    }
}
