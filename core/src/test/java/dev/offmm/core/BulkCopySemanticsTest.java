package dev.offmm.core;

import dev.offmm.offheap.PhysicalMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * One bulk-copy semantics, the hardware's, through an {@link Mmu} and through the casual
 * {@link AddressSpace} accessors alike: a copy that faults has copied every byte before the first
 * page it could not access and none after, and says how many; a page-crossing store is whole or
 * nothing; a fault names the address the caller passed when that is where it failed.
 */
class BulkCopySemanticsTest {
    private static final int PAGE = 4096;
    private static final int RW = Prot.READ | Prot.WRITE;
    private PhysicalMemory memory;
    private AddressSpace as;
    private Mmu mmu;

    @BeforeEach
    void setUp() {
        memory = PhysicalMemory.create(16L << 20);
        as = AddressSpace.create(memory, VmConfig.defaults());
        mmu = as.attach();
    }

    @AfterEach
    void tearDown() {
        mmu.close();
        as.close();
        memory.close();
    }

    /** The two ways in: [0] through the Mmu, [1] casual. */
    private interface Copy {
        void run(long va, byte[] buf, int off, int len);
    }

    private List<Copy> writers() {
        return List.of(mmu::write, as::write);
    }

    private List<Copy> readers() {
        return List.of(mmu::read, as::read);
    }

    @ParameterizedTest(name = "via {0} (0 = Mmu, 1 = casual)")
    @ValueSource(ints = {0, 1})
    void shouldWriteEveryByteBeforeAHoleAndNoneAfter(int via) {
        long a = as.mmap(0x1000_0000L, 1 << 20, RW, MapFlags.FIXED);
        as.munmap(a + (512 << 10), PAGE);
        byte[] src = new byte[1 << 20];
        Arrays.fill(src, (byte) 7);
        FaultException e = assertThrows(FaultException.class, () -> writers().get(via).run(a, src, 0, src.length));
        assertEquals(FaultException.Kind.MAPERR, e.kind());
        assertEquals(a + (512 << 10), e.address());
        assertEquals(512 << 10, e.bytesCopied(), "every byte before the hole");
        assertEquals(7, mmu.getByte(a + (512 << 10) - 1));
        assertEquals(0, mmu.getByte(a + (512 << 10) + PAGE), "none after the hole");
    }

    @ParameterizedTest(name = "via {0} (0 = Mmu, 1 = casual)")
    @ValueSource(ints = {0, 1})
    void shouldWriteTheWritablePageOfACopyThatCrossesIntoAReadOnlyOne(int via) {
        long a = as.mmap(0x1000_0000L, 2 * PAGE, RW, MapFlags.FIXED);
        as.mprotect(a + PAGE, PAGE, Prot.READ);
        byte[] src = new byte[2 * PAGE];
        Arrays.fill(src, (byte) 9);
        FaultException e = assertThrows(FaultException.class, () -> writers().get(via).run(a, src, 0, src.length));
        assertEquals(FaultException.Kind.ACCERR, e.kind());
        assertEquals(a + PAGE, e.address());
        assertEquals(PAGE, e.bytesCopied());
        assertEquals(9, mmu.getByte(a + PAGE - 1));
        assertEquals(0, mmu.getByte(a + PAGE));
    }

    @ParameterizedTest(name = "a {0}-byte copy")
    @ValueSource(ints = {2, 100, 4096})
    void shouldCopyTheFirstPageOfAShortCopyThatCrossesIntoAHole(int len) {
        // A copy of at most a page translates both of its pages before it moves a byte; a fault on
        // the second must still leave the first page's bytes copied and say so.
        long a = as.mmap(0x1000_0000L, 2 * PAGE, RW, MapFlags.FIXED);
        as.munmap(a + PAGE, PAGE);
        int head = len / 2;
        long at = a + PAGE - head;
        byte[] src = new byte[len];
        Arrays.fill(src, (byte) 5);
        long maperr = as.stats().faults("maperr");
        FaultException w = assertThrows(FaultException.class, () -> mmu.write(at, src, 0, len));
        assertEquals(a + PAGE, w.address());
        assertEquals(head, w.bytesCopied());
        assertEquals(maperr + 1, as.stats().faults("maperr"), "the hole faulted once, not once per attempt");
        assertEquals(5, mmu.getByte(a + PAGE - 1));
        assertEquals(5, mmu.getByte(at));
        byte[] dst = new byte[len];
        FaultException r = assertThrows(FaultException.class, () -> mmu.read(at, dst, 0, len));
        assertEquals(head, r.bytesCopied());
        assertEquals(maperr + 2, as.stats().faults("maperr"));
        assertEquals(5, dst[head - 1]);
        assertEquals(0, dst[head], "none after the hole");
    }

    @ParameterizedTest(name = "via {0} (0 = Mmu, 1 = casual)")
    @ValueSource(ints = {0, 1})
    void shouldReadEveryByteBeforeAHoleAcrossManyAccesses(int via) {
        long a = as.mmap(0x1000_0000L, 300L * PAGE, RW, MapFlags.FIXED);
        for (int p = 0; p < 300; p++) {
            mmu.putLong(a + (long) p * PAGE, p + 1);
        }
        as.munmap(a + 200L * PAGE, PAGE);
        byte[] dst = new byte[300 * PAGE];
        FaultException e = assertThrows(FaultException.class, () -> readers().get(via).run(a, dst, 0, dst.length));
        assertEquals(200L * PAGE, e.bytesCopied(), "200 pages, across the copy's access boundaries every 64 pages");
        for (int p = 0; p < 200; p++) {
            assertEquals((byte) (p + 1), dst[p * PAGE], "page " + p);
        }
        assertEquals(0, dst[200 * PAGE]);
    }

    @ParameterizedTest(name = "via {0} (0 = Mmu, 1 = casual)")
    @ValueSource(ints = {0, 1})
    void shouldStoreAPageCrossingLongWholeOrNotAtAll(int via) {
        long a = as.mmap(0x1000_0000L, 2 * PAGE, RW, MapFlags.FIXED);
        as.munmap(a + PAGE, PAGE);
        long at = a + PAGE - 4;
        FaultException e = assertThrows(FaultException.class,
                () -> {
                    if (via == 0) {
                        mmu.putLong(at, -1L);
                    } else {
                        as.putLong(at, -1L);
                    }
                });
        assertEquals(FaultException.Kind.MAPERR, e.kind());
        assertEquals(0, mmu.getInt(at), "not one byte of the torn store landed");
    }

    @Test
    void shouldNameTheAddressPassedWhenItIsBeyondTheUserSpace() {
        byte[] buf = new byte[16];
        for (Copy c : readers()) {
            FaultException e = assertThrows(FaultException.class, () -> c.run(Long.MAX_VALUE - 2, buf, 0, 16));
            assertEquals(Long.MAX_VALUE - 2, e.address());
            assertEquals(0, e.bytesCopied());
        }
        long top = as.mmap(AddressSpace.USER_END - PAGE, PAGE, RW, MapFlags.FIXED);
        FaultException e = assertThrows(FaultException.class, () -> mmu.read(top, new byte[2 * PAGE], 0, 2 * PAGE));
        assertEquals(AddressSpace.USER_END, e.address(), "the copy ran up to the end of the user space");
        assertEquals(PAGE, e.bytesCopied());
        mmu.read(AddressSpace.USER_END, buf, 0, 0);
    }

    @Test
    void shouldListFaultKindsInTheDocumentedOrder() {
        assertEquals(List.of("zero", "anon", "cow", "reuse", "spurious", "maperr", "accerr", "oom", "mmapLockFallback",
                        "thp", "hugetlb", "thpFallback", "cowCopy"),
                List.copyOf(as.stats().faults().keySet()));
    }
}
