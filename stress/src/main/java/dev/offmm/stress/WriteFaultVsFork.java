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
 * A write fault in the parent races its fork: the page the write lands in is either copied into
 * the snapshot with the write (the fault ran first) or without it (the fork ran first, and the
 * write then copied the page or reused it in the parent). Either way the spaces are independent
 * afterwards.
 *
 * <p>r1: what the child reads at the written page: 1 the write, 0 the page before it. r2:
 * violated invariants, as bits: 1 the parent lost its write; 2 a later write in either space
 * shows in the other; 4 close found a leak.
 */
@JCStressTest
@Outcome(id = "1, 0", expect = Expect.ACCEPTABLE, desc = "The write came first: the child has it.")
@Outcome(id = "0, 0", expect = Expect.ACCEPTABLE, desc = "The fork came first: the child has the page before the write.")
@Outcome(expect = Expect.FORBIDDEN, desc = "A lost write, spaces not independent, or a leak.")
@State
public class WriteFaultVsFork {
    private static final long PAGE = 4096;
    private static final long SIZE = 2L << 20;

    private final AddressSpace parent = AddressSpace.create(StressMemory.MEMORY, StressMemory.SPLIT);
    private final long a;
    private AddressSpace child;

    public WriteFaultVsFork() {
        a = parent.mmap(0, SIZE, Prot.READ | Prot.WRITE, MapFlags.NONE);
        parent.putLong(a + PAGE, 5);
    }

    /** A write fault on an untouched page of the shared 2 MiB. */
    @Actor
    public void write() {
        parent.putLong(a, 1);
    }

    /** The fork. */
    @Actor
    public void fork() {
        child = parent.fork();
    }

    /** Reads the child, then checks that later writes stay in their space, and closes both. */
    @Arbiter
    public void arbiter(II_Result r) {
        r.r1 = (int) child.getLong(a);
        int bad = parent.getLong(a) == 1 ? 0 : 1;
        parent.putLong(a + PAGE, 6);
        child.putLong(a + 2 * PAGE, 9);
        if (child.getLong(a + PAGE) != 5 || parent.getLong(a + 2 * PAGE) != 0) {
            bad |= 2;
        }
        try {
            child.close();
            parent.close();
        } catch (IllegalStateException e) {
            bad |= 4;
        }
        r.r2 = bad;
    }
}
