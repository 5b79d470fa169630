package dev.offmm.core;

/** Advice of {@code madvise}, as in madvise(2). */
public final class Advice {
    /** Drop the pages: the next read sees zeros. Page tables stay. */
    public static final int DONTNEED = 4;
    /** Expect access soon. For anonymous memory without swap, nothing to do (as in Linux). */
    public static final int WILLNEED = 3;
    /** Allow transparent huge pages in the range (recorded on the VMA). */
    public static final int HUGEPAGE = 14;
    /** Forbid transparent huge pages in the range (recorded on the VMA). */
    public static final int NOHUGEPAGE = 15;

    /**
     * Collapse every 2 MiB-aligned part of the range into huge pages now ({@code MADV_COLLAPSE}):
     * the present 4 KiB pages are copied into a fresh 2 MiB frame (absent ones read as zero).
     * Works whatever the {@link Thp} policy, but not in {@link #NOHUGEPAGE} or hugetlb VMAs.
     */
    public static final int COLLAPSE = 25;

    private Advice() {
    }

    /**
     * The name of an advice value, for messages.
     *
     * @param advice an advice value, known or not
     * @return its name ({@code "DONTNEED"}, ...), or {@code "advice N"} for an unknown value
     */
    public static String name(int advice) {
        return switch (advice) {
            case DONTNEED -> "DONTNEED";
            case WILLNEED -> "WILLNEED";
            case HUGEPAGE -> "HUGEPAGE";
            case NOHUGEPAGE -> "NOHUGEPAGE";
            case COLLAPSE -> "COLLAPSE";
            default -> "advice " + advice;
        };
    }
}
