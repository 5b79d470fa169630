package dev.offmm.offheap.frame;

import dev.offmm.offheap.page.MemMap;
import dev.offmm.offheap.PhysicalMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Misuse of the frame allocator is rejected with an exception that names the mistake, and leaves the state intact. */
class FreeChecksTest {
    private PhysicalMemory memory;
    private BuddyState initial;

    @BeforeEach
    void create() {
        memory = PhysicalMemory.create(4L << 20);
        initial = BuddyState.of(memory);
    }

    @AfterEach
    void close() {
        memory.close();
    }

    /** After a rejected free, the frame can still be freed properly and nothing leaked. */
    private void assertRecovers(long pfn, int order) {
        memory.zone().freeFrames(pfn, order);
        memory.zone().frames().drainCurrentThread();
        BuddyState.of(memory).assertSameAs(initial);
    }

    private static void assertMessageContains(Throwable e, String... parts) {
        for (String part : parts) {
            assertTrue(e.getMessage().contains(part), () -> "message \"" + e.getMessage() + "\" mentions \"" + part + "\"");
        }
    }

    @ParameterizedTest(name = "order {0}")
    @ValueSource(ints = {0, 1, 4, 9})
    void shouldRejectADoubleFree(int order) {
        long pfn = memory.zone().allocFrames(order);
        memory.zone().freeFrames(pfn, order);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> memory.zone().freeFrames(pfn, order));
        assertMessageContains(e, "double free", "pfn=" + pfn);
        memory.zone().frames().drainCurrentThread();
        BuddyState.of(memory).assertSameAs(initial);
    }

    @Test
    void shouldRejectADoubleFreeOfAFrameStillParkedInTheCache() {
        long pfn = memory.zone().allocFrame();
        memory.zone().freeFrame(pfn);
        assertTrue((memory.zone().memMap().flagsAcquire(pfn) & MemMap.PG_PCP) != 0, "the frame sits in the per-thread cache");
        assertThrows(IllegalStateException.class, () -> memory.zone().freeFrame(pfn));
        long again = memory.zone().allocFrame();
        assertEquals(pfn, again, "the cache holds the frame once: it is handed out again first");
        assertRecovers(again, 0);
    }

    @Test
    void shouldRejectFreeingWithTheWrongOrder() {
        long pfn = memory.zone().allocFrames(2);
        IllegalArgumentException smaller = assertThrows(IllegalArgumentException.class, () -> memory.zone().freeFrames(pfn, 1));
        assertMessageContains(smaller, "order=1", "2");
        IllegalArgumentException asOrder0 = assertThrows(IllegalArgumentException.class, () -> memory.zone().freeFrame(pfn));
        assertMessageContains(asOrder0, "order=0");
        assertRecovers(pfn, 2);

        long single = memory.zone().allocFrames(1);
        List<Long> order0 = new ArrayList<>();
        long frame;
        do {
            frame = memory.zone().allocFrame();
            order0.add(frame);
        } while ((frame & 1) != 0);
        long even = frame;
        assertThrows(IllegalArgumentException.class, () -> memory.zone().freeFrames(even, 1),
                "an order-0 frame freed as order 1");
        order0.forEach(memory.zone()::freeFrame);
        assertRecovers(single, 1);
    }

    @Test
    void shouldRejectAnOutOfRangeOrMisalignedPfn() {
        long frames = memory.frameCount();
        assertMessageContains(assertThrows(IllegalArgumentException.class, () -> memory.zone().freeFrame(-1)), "pfn=-1");
        assertMessageContains(assertThrows(IllegalArgumentException.class, () -> memory.zone().freeFrame(frames)),
                "pfn=" + frames);
        assertThrows(IllegalArgumentException.class, () -> memory.zone().freeFrames(frames - 512, 10), "order above the maximum");
        assertThrows(IllegalArgumentException.class, () -> memory.zone().freeFrames(0, -1), "negative order");
        assertThrows(IllegalArgumentException.class, () -> memory.zone().allocFrames(10));
        assertThrows(IllegalArgumentException.class, () -> memory.zone().allocFrames(-1));

        long pfn = memory.zone().allocFrames(3);
        IllegalArgumentException misaligned = assertThrows(IllegalArgumentException.class,
                () -> memory.zone().freeFrames(pfn + 4, 3));
        assertMessageContains(misaligned, "multiple of 8");
        assertThrows(IllegalArgumentException.class, () -> memory.zone().freeFrames(frames - 4, 3), "block crosses the end");
        assertRecovers(pfn, 3);
    }

    @Test
    void shouldRejectFreeingTheReservedZeroPage() {
        long refs = memory.zone().memMap().refcountVolatile(PhysicalMemory.ZERO_PFN);
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> memory.zone().freeFrame(PhysicalMemory.ZERO_PFN));
        assertMessageContains(e, "pfn=0");
        assertMessageContains(e, "reserved");
        assertThrows(IllegalStateException.class, () -> memory.zone().freeFrames(PhysicalMemory.ZERO_PFN, 9));
        assertEquals(refs, memory.zone().memMap().refcountVolatile(PhysicalMemory.ZERO_PFN));
        BuddyState.of(memory).assertSameAs(initial);
    }

    @ParameterizedTest(name = "order {0}")
    @ValueSource(ints = {0, 3})
    void shouldRejectFreeingAFrameThatIsStillAPageTable(int order) {
        long pfn = memory.zone().allocFrames(order);
        memory.zone().memMap().setTypeRelease(pfn, MemMap.TYPE_PTE_TABLE);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> memory.zone().freeFrames(pfn, order));
        assertMessageContains(e, "pfn=" + pfn, "page type " + MemMap.TYPE_PTE_TABLE);
        memory.zone().memMap().setTypeRelease(pfn, MemMap.TYPE_NONE);
        assertRecovers(pfn, order);
    }

    @Test
    void shouldRejectFreeingAMappedFrame() {
        long pfn = memory.zone().allocFrame();
        memory.zone().memMap().addAndGetMapcount(pfn, 1);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> memory.zone().freeFrame(pfn));
        assertMessageContains(e, "mapcount=1");
        memory.zone().memMap().addAndGetMapcount(pfn, -1);
        assertRecovers(pfn, 0);
    }

    @Test
    void shouldRejectFreeingAFrameWithAnExtraReference() {
        long pfn = memory.zone().allocFrames(1);
        memory.zone().memMap().addAndGetRefcount(pfn, 1);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> memory.zone().freeFrames(pfn, 1));
        assertMessageContains(e, "refcount=2");
        memory.zone().memMap().addAndGetRefcount(pfn, -1);
        assertRecovers(pfn, 1);
    }

    @Test
    void shouldKeepTheReferenceWhenTheLastPutFindsTheFrameStillMapped() {
        long pfn = memory.zone().allocFrame();
        memory.zone().memMap().addAndGetMapcount(pfn, 1);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> memory.zone().frames().putFrames(pfn, 0));
        assertMessageContains(e, "pfn=" + pfn, "mapcount 1");
        assertEquals(1, memory.zone().memMap().refcountVolatile(pfn), "the reference was given back");
        memory.zone().memMap().addAndGetMapcount(pfn, -1);
        memory.zone().frames().putFrames(pfn, 0);
        memory.zone().frames().drainCurrentThread();
        BuddyState.of(memory).assertSameAs(initial);
    }

    @Test
    void shouldKeepTheReferenceWhenTheLastPutNamesTheWrongOrder() {
        long pfn = memory.zone().allocFrames(2);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> memory.zone().frames().putFrames(pfn, 1));
        assertMessageContains(e, "order=1");
        assertEquals(1, memory.zone().memMap().refcountVolatile(pfn), "the reference was given back");
        assertThrows(IllegalArgumentException.class, () -> memory.zone().frames().putFrames(pfn, 10));
        assertThrows(IllegalArgumentException.class, () -> memory.zone().frames().putFrames(pfn + 2, 2), "misaligned");
        assertThrows(IllegalArgumentException.class, () -> memory.zone().frames().putFrames(memory.frameCount(), 0),
                "out of range");
        assertEquals(1, memory.zone().memMap().refcountVolatile(pfn), "no rejected put took the reference");
        long single = memory.zone().allocFrames(1);
        assertThrows(IllegalArgumentException.class, () -> memory.zone().frames().putFrames(single, 0));
        assertEquals(1, memory.zone().memMap().refcountVolatile(single), "the reference was given back");
        memory.zone().freeFrames(single, 1);
        assertRecovers(pfn, 2);
    }

    @Test
    void shouldRejectPuttingAFreeFrame() {
        long pfn = memory.zone().allocFrame();
        memory.zone().frames().putFrames(pfn, 0);
        int cached = memory.zone().memMap().refcountVolatile(pfn);
        assertThrows(IllegalStateException.class, () -> memory.zone().frames().putFrames(pfn, 0));
        assertEquals(cached, memory.zone().memMap().refcountVolatile(pfn),
                "the failed put left the free frame's refcount as it was");
        assertTrue(cached >= 0, "never negative");
        memory.zone().frames().drainCurrentThread();
        BuddyState.of(memory).assertSameAs(initial);
    }
}
