package dev.offmm.core.walk;

/**
 * The state of one walk ({@code struct mm_walk}), passed to every callback. A callback sets
 * {@link #action} to steer the walk after the entry it was given.
 */
public final class MmWalk {
    /** Descend into the entry's table (the default). */
    public static final int ACTION_SUBTREE = 0;
    /** Do not descend: continue with the next entry. */
    public static final int ACTION_CONTINUE = 1;
    /** Re-read this entry and call again (it changed under the callback's feet). */
    public static final int ACTION_AGAIN = 2;

    /** What to do after the current callback; reset to {@link #ACTION_SUBTREE} before each. */
    public int action;
    /** Free for the caller's use. */
    public Object priv;

    /** A fresh walk state. */
    public MmWalk() {
        this.action = ACTION_SUBTREE;
    }
}
