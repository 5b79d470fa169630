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
import org.openjdk.jcstress.infra.results.III_Result;

/**
 * A parent and its child share one PTE table after a fork; each writes into it at once, which
 * unshares the table in its own space. The decision (copy, or keep as the last user) is made
 * under the table's split lock, and the copier lets go of its share only after its own grace
 * period, still under that lock: so exactly one copies and the other keeps the table without
 * copying. Never both (the count was read before either let go), never neither.
 *
 * <p>r1: tables copied, r2: tables kept, summed over both spaces. r3: violated invariants, as
 * bits: 1 a space reads the other's write or lost its own; 2 a space lost the snapshot; 4 close
 * found a leak (a table freed twice or never, a lock not freed, a frame not back).
 */
@JCStressTest
@Outcome(id = "1, 1, 0", expect = Expect.ACCEPTABLE, desc = "One copied the table, the other was its last user and kept it.")
@Outcome(expect = Expect.FORBIDDEN, desc = "Both copied, neither did, a write crossed spaces, or a leak.")
@State
public class UnshareVsUnshare {
    private static final long PAGE = 4096;
    private static final long SIZE = 2L << 20;

    private final AddressSpace parent = AddressSpace.create(StressMemory.MEMORY, StressMemory.SPLIT_DEBUG);
    private final long a;
    private final AddressSpace child;

    public UnshareVsUnshare() {
        a = parent.mmap(0, SIZE, Prot.READ | Prot.WRITE, MapFlags.NONE);
        parent.putLong(a, 7);
        parent.putLong(a + PAGE, 8);
        child = parent.fork();
    }

    /** The parent writes page 0: its table is shared, so it unshares first. */
    @Actor
    public void parentWrites() {
        parent.putLong(a, 1);
    }

    /** The child writes page 0 too. */
    @Actor
    public void childWrites() {
        child.putLong(a, 2);
    }

    /** Counts the unshares, checks both spaces, closes both (check_mm runs in close). */
    @Arbiter
    public void arbiter(III_Result r) {
        r.r1 = (int) (parent.stats().unshares().get("copied") + child.stats().unshares().get("copied"));
        r.r2 = (int) (parent.stats().unshares().get("kept") + child.stats().unshares().get("kept"));
        int bad = 0;
        if (parent.getLong(a) != 1 || child.getLong(a) != 2) {
            bad |= 1;
        }
        if (parent.getLong(a + PAGE) != 8 || child.getLong(a + PAGE) != 8) {
            bad |= 2;
        }
        try {
            child.close();
            parent.close();
        } catch (IllegalStateException e) {
            bad |= 4;
        }
        r.r3 = bad;
    }
}
