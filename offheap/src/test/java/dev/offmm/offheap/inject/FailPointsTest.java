package dev.offmm.offheap.inject;

import dev.offmm.offheap.PhysicalMemory;
import dev.offmm.offheap.frame.FrameAllocator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.BitSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Deterministic and seeded-random failure injection at the allocation sites. */
class FailPointsTest {

    private static BitSet pattern(FailPoints points, FailSite site, int calls) {
        BitSet failed = new BitSet(calls);
        for (int i = 0; i < calls; i++) {
            if (points.shouldFail(site)) {
                failed.set(i);
            }
        }
        return failed;
    }

    @Test
    void shouldNeverFailWhileDisarmed() {
        FailPoints points = new FailPoints();
        for (FailSite site : FailSite.values()) {
            assertTrue(pattern(points, site, 1000).isEmpty(), site.name());
            assertEquals(0, points.injected(site));
        }
    }

    @ParameterizedTest(name = "n={0}")
    @ValueSource(longs = {1, 2, 7, 100})
    void shouldFailExactlyTheNthCallOnce(long n) {
        FailPoints points = new FailPoints();
        points.failNth(FailSite.FRAME, n);
        BitSet failed = pattern(points, FailSite.FRAME, 500);
        assertEquals(1, failed.cardinality(), "failed calls " + failed);
        assertEquals(n - 1, failed.nextSetBit(0), "the n-th call (index n-1) failed");
        assertEquals(1, points.injected(FailSite.FRAME));
        assertTrue(pattern(points, FailSite.PAGE_TABLE, 500).isEmpty(), "other sites are unaffected");
    }

    @Test
    void shouldFailTheNthAllocationOfPhysicalMemory() {
        try (PhysicalMemory memory = PhysicalMemory.create(2L << 20)) {
            memory.zone().failPoints().failNth(FailSite.FRAME, 3);
            long a = memory.zone().allocFrame();
            long b = memory.zone().allocFrame();
            assertEquals(FrameAllocator.NO_FRAME, memory.zone().allocFrame(), "third allocation fails");
            long c = memory.zone().allocFrame();
            assertNotEquals(FrameAllocator.NO_FRAME, a);
            assertNotEquals(FrameAllocator.NO_FRAME, b);
            assertNotEquals(FrameAllocator.NO_FRAME, c);
            assertEquals(3, memory.usedFrameCount(), "the failed call took nothing");

            memory.zone().failPoints().failNth(FailSite.FRAME_HIGH_ORDER, 1);
            assertEquals(FrameAllocator.NO_FRAME, memory.zone().allocFrames(4));
            long d = memory.zone().allocFrames(4);
            assertNotEquals(FrameAllocator.NO_FRAME, d);
            assertEquals(1, memory.zone().failPoints().injected(FailSite.FRAME));
            assertEquals(1, memory.zone().failPoints().injected(FailSite.FRAME_HIGH_ORDER));
            memory.zone().freeFrame(a);
            memory.zone().freeFrame(b);
            memory.zone().freeFrame(c);
            memory.zone().freeFrames(d, 4);
            assertEquals(0, memory.usedFrameCount());
        }
    }

    @Test
    void shouldReproduceTheSameRandomFailuresFromTheSameSeed() {
        FailPoints first = new FailPoints();
        first.failRandomly(FailSite.PAGE_TABLE, 42, 0.25);
        BitSet a = pattern(first, FailSite.PAGE_TABLE, 10_000);

        FailPoints second = new FailPoints();
        second.failRandomly(FailSite.PAGE_TABLE, 42, 0.25);
        BitSet b = pattern(second, FailSite.PAGE_TABLE, 10_000);
        assertEquals(a, b, "same seed, same failures");
        assertEquals(a.cardinality(), first.injected(FailSite.PAGE_TABLE));
        assertTrue(a.cardinality() > 2200 && a.cardinality() < 2800, "about a quarter fail: " + a.cardinality());

        first.failRandomly(FailSite.PAGE_TABLE, 42, 0.25);
        assertEquals(a, pattern(first, FailSite.PAGE_TABLE, 10_000), "re-arming restarts the sequence");

        FailPoints other = new FailPoints();
        other.failRandomly(FailSite.PAGE_TABLE, 43, 0.25);
        assertNotEquals(a, pattern(other, FailSite.PAGE_TABLE, 10_000), "another seed, other failures");
    }

    @Test
    void shouldFailAlwaysOrNeverAtTheExtremeProbabilities() {
        FailPoints points = new FailPoints();
        points.failAlways(FailSite.SLAB_PAGE);
        assertEquals(100, pattern(points, FailSite.SLAB_PAGE, 100).cardinality());
        points.failRandomly(FailSite.SLAB_PAGE, 1, 0.0);
        assertTrue(pattern(points, FailSite.SLAB_PAGE, 100).isEmpty());
        assertEquals(100, points.injected(FailSite.SLAB_PAGE));
    }

    @Test
    void shouldStopFailingOnceDisarmed() {
        FailPoints points = new FailPoints();
        points.failAlways(FailSite.FRAME);
        points.failAlways(FailSite.PTLOCK);
        assertTrue(points.shouldFail(FailSite.FRAME));

        points.disarm(FailSite.FRAME);
        assertTrue(pattern(points, FailSite.FRAME, 100).isEmpty(), "the disarmed site");
        assertTrue(points.shouldFail(FailSite.PTLOCK), "the other site stays armed");

        points.failNth(FailSite.FRAME, 5);
        points.disarmAll();
        for (FailSite site : FailSite.values()) {
            assertTrue(pattern(points, site, 100).isEmpty(), site.name());
        }
        assertEquals(1, points.injected(FailSite.FRAME), "disarming keeps the count of what was injected");
        assertEquals(1, points.injected(FailSite.PTLOCK));
    }

    @Test
    void shouldRejectBadPlans() {
        FailPoints points = new FailPoints();
        assertThrows(IllegalArgumentException.class, () -> points.failNth(FailSite.FRAME, 0));
        assertThrows(IllegalArgumentException.class, () -> points.failRandomly(FailSite.FRAME, 1, -0.1));
        assertThrows(IllegalArgumentException.class, () -> points.failRandomly(FailSite.FRAME, 1, 1.5));
        assertThrows(IllegalArgumentException.class, () -> points.failRandomly(FailSite.FRAME, 1, Double.NaN));
        assertFalse(points.shouldFail(FailSite.FRAME), "a rejected plan arms nothing");
    }
}
