package dev.offmm.core;

/**
 * When anonymous faults map transparent huge pages, as
 * {@code /sys/kernel/mm/transparent_hugepage/enabled} says for Linux. Only a write fault inside a
 * 2 MiB-aligned range wholly inside the VMA maps one; without a free order-9 frame it falls back
 * to 4 KiB pages. A read fault maps the 4 KiB zero page in every mode.
 */
public enum Thp {
    /** Never: every fault maps 4 KiB pages ({@link Advice#COLLAPSE} still works). */
    NEVER,
    /** Only in VMAs advised with {@link Advice#HUGEPAGE} (the default, as on most distributions). */
    MADVISE,
    /** In every VMA not advised with {@link Advice#NOHUGEPAGE}. */
    ALWAYS
}
