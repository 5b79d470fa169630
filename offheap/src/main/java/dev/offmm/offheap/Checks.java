package dev.offmm.offheap;

/**
 * Argument checks for public edges. Each failure says {@code name=value (expected ...)}, in the
 * manner of JCTools' {@code RangeUtil}. Hot paths do not call these; they validate once at the
 * edge. Public for offmm's other packages and modules; not meant for applications.
 */
public final class Checks {
    private Checks() {
    }

    /**
     * Fails unless {@code value >= 0}.
     *
     * @param name the argument's name, for the message
     * @param value the argument
     * @return {@code value}
     * @throws IllegalArgumentException {@code name=value (expected ...)} if it is not
     */
    public static long nonNegative(String name, long value) {
        if (value < 0) {
            throw new IllegalArgumentException(name + "=" + value + " (expected >= 0)");
        }
        return value;
    }

    /**
     * Fails unless {@code value > 0}.
     *
     * @param name the argument's name, for the message
     * @param value the argument
     * @return {@code value}
     * @throws IllegalArgumentException {@code name=value (expected ...)} if it is not
     */
    public static long positive(String name, long value) {
        if (value <= 0) {
            throw new IllegalArgumentException(name + "=" + value + " (expected > 0)");
        }
        return value;
    }

    /**
     * Fails unless {@code min <= value <= max}.
     *
     * @param name the argument's name, for the message
     * @param value the argument
     * @param min the smallest value accepted
     * @param max the largest value accepted
     * @return {@code value}
     * @throws IllegalArgumentException {@code name=value (expected ...)} if it is not
     */
    public static long inRange(String name, long value, long min, long max) {
        if (value < min || value > max) {
            throw new IllegalArgumentException(
                    name + "=" + value + " (expected " + min + " <= " + name + " <= " + max + ")");
        }
        return value;
    }

    /**
     * Fails unless {@code value} is a multiple of {@code alignment}.
     *
     * @param name the argument's name, for the message
     * @param value the argument
     * @param alignment a power of two
     * @return {@code value}
     * @throws IllegalArgumentException {@code name=value (expected ...)} if it is not
     */
    public static long aligned(String name, long value, long alignment) {
        if ((value & (alignment - 1)) != 0) {
            throw new IllegalArgumentException(
                    name + "=0x" + Long.toHexString(value) + " (expected a multiple of 0x" + Long.toHexString(alignment) + ")");
        }
        return value;
    }

    /**
     * Fails unless {@code value} is a power of two.
     *
     * @param name the argument's name, for the message
     * @param value the argument
     * @return {@code value}
     * @throws IllegalArgumentException {@code name=value (expected ...)} if it is not
     */
    public static long powerOfTwo(String name, long value) {
        if (value <= 0 || Long.bitCount(value) != 1) {
            throw new IllegalArgumentException(name + "=" + value + " (expected a power of two)");
        }
        return value;
    }
}
