package dev.offmm.core.pgtable;

import dev.offmm.core.ops.MapOps;

/**
 * A deliberately wrong class for {@code LayeringTest}: the page-table layer calling up into the
 * operations layer. It lives in the test sources only, so that the layering check can show it
 * catches such an import; main code never does this.
 */
public final class PlantedUpwardImport {
    private PlantedUpwardImport() {
    }

    /** The upward call. */
    public static void unmapFromBelow(MapOps ops) {
        ops.munmap(0, Entries.PAGE_SIZE);
    }
}
