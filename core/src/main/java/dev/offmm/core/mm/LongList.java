package dev.offmm.core.mm;

import java.util.Arrays;

/** A growable list of primitive longs (no boxing), for batches of frames. Not thread-safe. */
public final class LongList {
    private long[] values;
    private int size;

    /** An empty list with room for {@code capacity}. */
    public LongList(int capacity) {
        values = new long[Math.max(4, capacity)];
    }

    /** Appends {@code v}. */
    public void add(long v) {
        if (size == values.length) {
            values = Arrays.copyOf(values, size * 2);
        }
        values[size++] = v;
    }

    /** Element {@code i}. */
    public long get(int i) {
        return values[i];
    }

    /** Number of elements. */
    public int size() {
        return size;
    }

    /** Whether empty. */
    public boolean isEmpty() {
        return size == 0;
    }

    /** Removes everything. */
    public void clear() {
        size = 0;
    }
}
