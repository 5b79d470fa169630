package dev.offmm.core.unmap;

import java.util.Arrays;

/** A growable list of primitive longs (no boxing), for batches of frames. Not thread-safe. */
final class LongList {
    private long[] values;
    private int size;

    /** An empty list with room for {@code capacity}. */
    LongList(int capacity) {
        values = new long[Math.max(4, capacity)];
    }

    /** Appends {@code v}. */
    void add(long v) {
        if (size == values.length) {
            values = Arrays.copyOf(values, size * 2);
        }
        values[size++] = v;
    }

    /** The backing array: elements {@code [0, size())} (changes when the list grows). */
    long[] array() {
        return values;
    }

    /** Element {@code i}. */
    long get(int i) {
        return values[i];
    }

    /** Number of elements. */
    int size() {
        return size;
    }

    /** Whether empty. */
    boolean isEmpty() {
        return size == 0;
    }

    /** Removes everything. */
    void clear() {
        size = 0;
    }
}
