package dev.offmm.core;

import dev.offmm.core.ops.MmServices;
import dev.offmm.core.reclaim.Reclaimer;

/** A space's PGD, retired by {@link AddressSpace#close()} like any table an unmap frees. */
final class PgdBatch implements Reclaimer.Batch {
    private final MmServices services;

    PgdBatch(MmServices services) {
        this.services = services;
    }

    @Override
    public int frames() {
        return 1;
    }

    @Override
    public void release() {
        services.tables().freePgd(services.mm().pgd());
    }
}
