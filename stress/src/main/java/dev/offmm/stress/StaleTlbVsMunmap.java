package dev.offmm.stress;

import dev.offmm.core.AddressSpace;
import dev.offmm.core.FaultException;
import dev.offmm.core.MapFlags;
import dev.offmm.core.Mmu;
import dev.offmm.core.Prot;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

import java.util.Arrays;

/**
 * Writes through a possibly stale TLB racing munmap and a remap. The writer attaches, caches the
 * translations of the four pages of R, and streams MAGIC bytes over all of R with one bulk copy
 * (which translates every page first, then copies for a few microseconds). The remapper unmaps R,
 * maps one page S and writes to it: its fault takes a frame from its own per-thread cache, where
 * R's frames go first if they are freed. Shootdown plus the grace period must keep R's frames from
 * anyone else while the writer may still use the old translations: a MAGIC byte can never appear
 * in S. (With the grace period disabled, the forbidden outcome is observed: see the README.)
 *
 * <p>r1: 0 the writer's copy ran, 1 it faulted MAPERR (R was already gone), 2 anything else.
 * r2: 1 if a MAGIC byte is in S once both actors are done.
 */
@JCStressTest
@Outcome(id = {"0, 0", "1, 0"}, expect = Expect.ACCEPTABLE, desc = "The writer wrote R's frames, or faulted; S is untouched.")
@Outcome(id = {"0, 1", "1, 1"}, expect = Expect.FORBIDDEN, desc = "A write through a stale translation reached the new mapping.")
@Outcome(expect = Expect.FORBIDDEN, desc = "The writer failed with something other than MAPERR.")
@State
public class StaleTlbVsMunmap {
    private static final long PAGE = 4096;
    private static final long R = 0x1000_0000L;
    private static final long S = 0x2000_0000L;
    private static final int PAGES = 4;
    private static final byte MAGIC = 0x5a;
    private static final byte[] FILL = filled();
    private static final int RW = Prot.READ | Prot.WRITE;

    private final AddressSpace as = AddressSpace.create(StressMemory.MEMORY, StressMemory.SPLIT);

    /** R mapped and resident before the actors start. */
    public StaleTlbVsMunmap() {
        as.mmap(R, PAGES * PAGE, RW, MapFlags.FIXED);
        for (int p = 0; p < PAGES; p++) {
            as.putLong(R + p * PAGE, 1);
        }
    }

    private static byte[] filled() {
        byte[] b = new byte[(int) (PAGES * PAGE)];
        Arrays.fill(b, MAGIC);
        return b;
    }

    /** Caches R's translations, then streams MAGIC over R through them. */
    @Actor
    public void writer(II_Result r) {
        try (Mmu mmu = as.attach()) {
            for (int p = 0; p < PAGES; p++) {
                mmu.getLong(R + p * PAGE);
            }
            mmu.write(R, FILL, 0, FILL.length);
            r.r1 = 0;
        } catch (FaultException e) {
            r.r1 = e.kind() == FaultException.Kind.MAPERR ? 1 : 2;
        } catch (RuntimeException e) {
            r.r1 = 2;
        }
    }

    /** munmap R, map S, fault S in. */
    @Actor
    public void remapper() {
        as.munmap(R, PAGES * PAGE);
        as.mmap(S, PAGE, RW, MapFlags.FIXED);
        as.putLong(S, 2);
    }

    /** Looks at S after both are done, then closes (check_mm: nothing leaked). */
    @Arbiter
    public void arbiter(II_Result r) {
        byte[] s = new byte[(int) PAGE];
        as.read(S, s, 0, s.length);
        int seen = 0;
        for (byte b : s) {
            seen |= b == MAGIC ? 1 : 0;
        }
        r.r2 = seen;
        as.close();
    }
}
