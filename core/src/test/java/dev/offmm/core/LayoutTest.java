package dev.offmm.core;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.openjdk.jol.info.ClassLayout;
import org.openjdk.jol.info.FieldLayout;

import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The words other threads write on the hot paths sit alone on their cache lines, in the layout
 * this JVM actually uses (JOL): at least {@value #LINE_PAIR} bytes (two lines, against the
 * adjacent-line prefetcher) from the object's start, from its end (the next object), and from
 * every field that is not padding. A field added later next to them fails here, not in a
 * benchmark.
 */
class LayoutTest {
    /** Two 64-byte lines: the spatial prefetcher pulls lines in pairs. */
    static final long LINE_PAIR = 128;

    static Stream<Arguments> hotWords() {
        return Stream.of(
                Arguments.of("dev.offmm.core.mm.Mm", Set.of("tlbGen")),
                Arguments.of("dev.offmm.core.reclaim.EpochSlot", Set.of("active")),
                Arguments.of("dev.offmm.core.reclaim.ReclaimCounts",
                        Set.of("pendingFrames", "releasedFrames", "barrierCovers", "lastBarrierNanos")),
                Arguments.of("dev.offmm.offheap.frame.ZoneLock", Set.of("state")));
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("hotWords")
    void shouldKeepTheHotWordsOnLinesOfTheirOwn(String className, Set<String> hot) throws Exception {
        ClassLayout layout = ClassLayout.parseClass(Class.forName(className));
        long hotStart = Long.MAX_VALUE;
        long hotEnd = 0;
        for (FieldLayout f : layout.fields()) {
            if (hot.contains(f.name())) {
                hotStart = Math.min(hotStart, f.offset());
                hotEnd = Math.max(hotEnd, f.offset() + f.size());
            }
        }
        String picture = layout.toPrintable();
        assertTrue(hotEnd > 0, className + " has none of " + hot + "\n" + picture);
        List<String> close = new ArrayList<>();
        if (hotStart < LINE_PAIR) {
            close.add("the object's start (and whatever precedes it) is " + hotStart + " bytes away");
        }
        if (layout.instanceSize() - hotEnd < LINE_PAIR) {
            close.add("the next object is " + (layout.instanceSize() - hotEnd) + " bytes away");
        }
        for (FieldLayout f : layout.fields()) {
            if (hot.contains(f.name()) || f.name().matches("[pq]\\d\\d")) {
                continue;
            }
            boolean before = f.offset() + f.size() <= hotStart - LINE_PAIR;
            boolean after = f.offset() >= hotEnd + LINE_PAIR;
            if (!before && !after) {
                close.add("field " + f.name() + " at " + f.offset());
            }
        }
        assertTrue(close.isEmpty(), className + ": too close to " + hot + ": " + close + "\n" + picture);
    }

    /**
     * The VMA's reader stripes are array elements, which JOL does not lay out: each stripe is at
     * least a line pair from the array's header (loaded by every reader's bounds check), from its
     * end, and from every other stripe.
     */
    @Test
    void shouldKeepEachVmaReaderStripeOnLinesOfItsOwn() throws Exception {
        Class<?> vma = Class.forName("dev.offmm.core.vma.Vma");
        Method offsetOf = vma.getDeclaredMethod("offsetOf", int.class);
        offsetOf.setAccessible(true);
        Field readers = vma.getDeclaredField("readers");
        readers.setAccessible(true);
        Object v = vma.getConstructor(long.class, long.class, int.class, int.class).newInstance(0L, 4096L, 0, 0);
        int length = ((long[]) readers.get(v)).length;
        Field stripes = vma.getDeclaredField("STRIPES");
        stripes.setAccessible(true);
        int n = stripes.getInt(null);
        long slot = LINE_PAIR / Long.BYTES;
        for (int s = 0; s < n; s++) {
            int i = (int) offsetOf.invoke(null, s);
            assertTrue(i >= slot, "stripe " + s + " at index " + i + " shares lines with the array header");
            assertTrue(length - i >= slot, "stripe " + s + " at index " + i + " of " + length + " is near the next object");
            for (int o = s + 1; o < n; o++) {
                int j = (int) offsetOf.invoke(null, o);
                assertTrue(Math.abs(i - j) >= slot, "stripes " + s + " and " + o + " share lines");
            }
        }
    }
}
