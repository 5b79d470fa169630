package dev.offmm.stress;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Prot;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

/**
 * A parent and its child share one PTE table; the parent unmaps the whole 2 MiB (it drops the
 * table, letting go of its share after its grace period, outside the table's lock) while the
 * child mprotects one page of it (it copies the table and lets go of its share under the lock).
 * Whichever takes the share count to -1 frees the table, once, and never while the other still
 * holds its lock (the destructor refuses a held lock, and check_mm at close sees any leak).
 *
 * <p>r1: 1 if the child reads its snapshot everywhere and the parent has nothing mapped. r2: 1
 * if both closed cleanly (every table, lock and frame back).
 */
@JCStressTest
@Outcome(id = "1, 1", expect = Expect.ACCEPTABLE, desc = "The table was freed once, after both let go.")
@Outcome(expect = Expect.FORBIDDEN, desc = "A lost snapshot, a failed operation, or a leak or double free at close.")
@State
public class DropVsCopy {
    private static final long PAGE = 4096;
    private static final long SIZE = 2L << 20;

    private final AddressSpace parent = AddressSpace.create(StressMemory.MEMORY, StressMemory.SPLIT_DEBUG);
    private final long a;
    private final AddressSpace child;
    private volatile boolean failed;

    public DropVsCopy() {
        a = parent.mmap(0, SIZE, Prot.READ | Prot.WRITE, MapFlags.NONE);
        parent.putLong(a, 7);
        parent.putLong(a + PAGE, 8);
        child = parent.fork();
    }

    /** Drops the shared table with the whole range. */
    @Actor
    public void parentUnmaps() {
        try {
            parent.munmap(a, SIZE);
        } catch (RuntimeException e) {
            failed = true;
        }
    }

    /** Copies the shared table to change one page's protection. */
    @Actor
    public void childMprotects() {
        try {
            child.mprotect(a + PAGE, PAGE, Prot.READ);
        } catch (RuntimeException e) {
            failed = true;
        }
    }

    /** Checks the child's snapshot and closes both. */
    @Arbiter
    public void arbiter(II_Result r) {
        r.r1 = !failed && child.getLong(a) == 7 && child.getLong(a + PAGE) == 8 && parent.mappings().isEmpty() ? 1 : 0;
        try {
            child.close();
            parent.close();
            r.r2 = 1;
        } catch (IllegalStateException e) {
            r.r2 = 0;
        }
    }
}
