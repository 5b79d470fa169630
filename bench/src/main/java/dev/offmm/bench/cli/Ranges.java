package dev.offmm.bench.cli;

import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

import java.util.Locale;

/**
 * Option converters that parse a number and check its range in one step, so that a bad value is
 * a usage error naming the accepted values ({@code '-1' is out of range (expected 1..256)}), never
 * a stack trace. A harness subclasses one per option with its bounds.
 */
public final class Ranges {
    private Ranges() {
    }

    /** An {@code int} in {@code [min, max]}. */
    public abstract static class IntRange implements ITypeConverter<Integer> {
        private final int min;
        private final int max;

        /** Accepts {@code min..max}. */
        protected IntRange(int min, int max) {
            this.min = min;
            this.max = max;
        }

        @Override
        public Integer convert(String value) {
            return (int) checked(value, min, max, expected(min, max));
        }
    }

    /** A {@code long} in {@code [min, max]}. */
    public abstract static class LongRange implements ITypeConverter<Long> {
        private final long min;
        private final long max;

        /** Accepts {@code min..max}. */
        protected LongRange(long min, long max) {
            this.min = min;
            this.max = max;
        }

        @Override
        public Long convert(String value) {
            return checked(value, min, max, expected(min, max));
        }
    }

    /** A finite {@code double} above {@code min} (or at it, if {@code minIncluded}) and at most {@code max}. */
    public abstract static class DoubleRange implements ITypeConverter<Double> {
        private final double min;
        private final boolean minIncluded;
        private final double max;

        /** Accepts {@code min..max}, or {@code min < v <= max} if {@code !minIncluded}. */
        protected DoubleRange(double min, boolean minIncluded, double max) {
            this.min = min;
            this.minIncluded = minIncluded;
            this.max = max;
        }

        @Override
        public Double convert(String value) {
            String expected = minIncluded ? num(min) + ".." + num(max) : "a number > " + num(min) + " and <= " + num(max);
            double v;
            try {
                v = Double.parseDouble(value.trim());
            } catch (NumberFormatException e) {
                throw new TypeConversionException("'" + value + "' is not a number (expected " + expected + ")");
            }
            boolean low = minIncluded ? v >= min : v > min;
            if (!(low && v <= max)) {
                throw new TypeConversionException("'" + value + "' is out of range (expected " + expected + ")");
            }
            return v;
        }
    }

    private static long checked(String value, long min, long max, String expected) {
        long v;
        try {
            v = Long.parseLong(value.trim());
        } catch (NumberFormatException e) {
            throw new TypeConversionException("'" + value + "' is not an integer (expected " + expected + ")");
        }
        if (v < min || v > max) {
            throw new TypeConversionException("'" + value + "' is out of range (expected " + expected + ")");
        }
        return v;
    }

    private static String expected(long min, long max) {
        return max == Long.MAX_VALUE || max == Integer.MAX_VALUE ? "an integer >= " + min : min + ".." + max;
    }

    private static String num(double v) {
        return v == Math.rint(v) ? Long.toString((long) v) : String.format(Locale.ROOT, "%s", v);
    }

    /** Repetitions of a harness that repeats whole scenarios: 1 to 1000. */
    public static final class Repetitions extends IntRange {
        /** Accepts 1..1000. */
        public Repetitions() {
            super(1, 1000);
        }
    }
}
